#!/bin/bash
# issue 18 item 3: OaK with a learned code vs OaK on the raw observation vs stream-q, 5 seeds.
#   benchmarks/oak_features.sh [OUT_DIR]     (PY=path/to/python to use another interpreter)
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD
PY=${PY:-.venv/bin/python}
R=${1:-runs/oak-features}
go() { name=$1; shift; echo "== $(date -u +%T) $name: oakrl run $*"; nice -n 10 $PY -m oakrl run "$@" --seeds 5 --no-plot --out $R/$name 2>&1 | tail -3; }
for sched in "" "permute"; do
  if [ -z "$sched" ]; then S="--steps 100000"; tag=cg; else S="--steps 200000 --schedule permute --every 50000 --tasks 2"; tag=cgperm; fi
  go ${tag}_oak-code --env CodedGrid-v0 --agent oak --opt features=code $S
  go ${tag}_oak-obs  --env CodedGrid-v0 --agent oak $S
  go ${tag}_stream-q --env CodedGrid-v0 --agent stream-q $S
done
go fg_oak-code --env Foraging-v0 --agent oak --opt features=code --steps 100000
go fg_oak-obs  --env Foraging-v0 --agent oak --steps 100000
go fg_stream-q --env Foraging-v0 --agent stream-q --steps 100000
go cg_oak-code-nooptions --env CodedGrid-v0 --agent oak --opt features=code --opt use_options=false --steps 100000
# OaK-code with stream-q's final exploration rate (its epsilon decays to 0.01; OaK's is 0.1),
# and with fewer code units (32) than the 48 observations the agent can see.
go cg_oak-code-eps0.01 --env CodedGrid-v0 --agent oak --opt features=code --opt epsilon=0.01 --steps 100000
go cg_oak-code-k32 --env CodedGrid-v0 --agent oak --opt features=code --opt code_size=32 --steps 100000
go cgperm_oak-code-eps0.01 --env CodedGrid-v0 --agent oak --opt features=code --opt epsilon=0.01 --steps 200000 --schedule permute --every 50000 --tasks 2
# The code re-permuted every 2,500 steps, 40 codes (the world of `oakrl study plasticity-rl`).
S="--steps 100000 --schedule permute --every 2500 --tasks 40"
go cgperm2500_oak-code --env CodedGrid-v0 --agent oak --opt features=code $S
go cgperm2500_stream-q --env CodedGrid-v0 --agent stream-q $S
go cgperm2500_oak-obs --env CodedGrid-v0 --agent oak $S
# Units declared dead sooner (below 1/K instead of 0.1/K): the same code, free for a new code sooner.
go cgperm2500_oak-code-dead1 --env CodedGrid-v0 --agent oak --opt features=code --opt code_dead=1.0 $S
go cg_oak-code-dead1 --env CodedGrid-v0 --agent oak --opt features=code --opt code_dead=1.0 --steps 100000
go cgperm_oak-code-dead1 --env CodedGrid-v0 --agent oak --opt features=code --opt code_dead=1.0 --steps 200000 --schedule permute --every 50000 --tasks 2
go fg_oak-code-dead1 --env Foraging-v0 --agent oak --opt features=code --opt code_dead=1.0 --steps 100000
$PY benchmarks/oak_features.py $R/cg_* --segment 10000
$PY benchmarks/oak_features.py $R/cgperm_*
$PY benchmarks/oak_features.py $R/cgperm2500_* --segment 10000
$PY benchmarks/oak_features.py $R/fg_* --segment 10000
echo "== $(date -u +%T) done"
