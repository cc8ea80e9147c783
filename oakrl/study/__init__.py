"""Studies: one command each, writing a results directory (summary.json, a metrics table, a figure).

A study is run specs plus an analysis: it builds `RunSpec`s, runs them through the lab's
`execute` (oakrl/study/common.py `run_plan`) and analyses the `RunResult`s in its own module.

plasticity-supervised  loss of plasticity on a continual supervised stream (oakrl.study.supervised;
                       not an agent run: its own compiled loop, the lab's seed keys)
plasticity-rl          streaming RL under changing dynamics, per remedy (oakrl.study.rl)
model-based            recovery when the rewards move: stream-q vs dyna vs planner (oakrl.study.model_based)
prior-vs-scratch       starting from demonstrations, good and bad (oakrl.study.prior)
oak                    OaK vs Dyna vs a stream learner on Rooms-v0 (oakrl.study.oak)
"""
