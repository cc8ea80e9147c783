"""`oakrl study ...`: the command line of the studies: flags -> a study config -> its module.

    oakrl study plasticity-supervised --out results/lop-sup
    oakrl study plasticity-rl --out results/lop-rl

Each study's module (oakrl/study/NAME.py) runs it and writes its results directory:
summary.json, a metrics table, figure.png and config.json; the command that made them is in
summary.json and at the foot of the figure. Results go to stdout, progress to stderr.
"""

from __future__ import annotations

import click

from oakrl.lab.cpu import cpu_threads_option
from oakrl.study.common import parse_methods, parse_widths


def _err(line: str) -> None:
    click.echo(line, err=True)


@click.group("study")
@cpu_threads_option("XLA:CPU threads for the study [default: all CPUs]; as for `oakrl run`.")
def study() -> None:
    """Studies: one command each, a results directory with summary.json, a table and a figure."""


@study.command("plasticity-supervised")
@click.option("--out", required=True, help="results directory (must not hold a study)")
@click.option("--tasks", default=200, show_default=True, help="tasks (input permutations) in the stream")
@click.option("--steps-per-task", default=500, show_default=True, help="samples per task, one SGD step each")
@click.option("--seeds", default=5, show_default=True)
@click.option("--seed", default=0, show_default=True, help="base seed")
@click.option("--hidden", default="64,64", show_default=True, help="hidden widths")
@click.option("--lr", default=0.05, show_default=True, help="SGD step size")
@click.option("--activation", default="relu", show_default=True, help="relu | tanh | leaky_relu")
@click.option("--layer-norm/--no-layer-norm", default=False, show_default=True)
@click.option(
    "--methods", default=None, help="comma-separated subset of backprop,cbp,redo,shrink-perturb,l2-init"
)
@click.option("--cbp-rate", default=5e-4, show_default=True, help="CBP replacement rate rho")
@click.option("--maturity", default=100, show_default=True)
@click.option("--redo-every", default=1000, show_default=True)
@click.option("--shrink", default=1e-4, show_default=True)
@click.option("--sigma", default=1e-3, show_default=True)
@click.option("--l2", default=1e-3, show_default=True)
def plasticity_supervised(
    out, tasks, steps_per_task, seeds, seed, hidden, lr, activation, layer_norm, methods, cbp_rate, maturity,
    redo_every, shrink, sigma, l2,
) -> None:  # fmt: skip
    """Loss of plasticity on online permuted inputs: plain backprop vs each remedy."""
    from oakrl.study.supervised import SupervisedConfig, study_supervised

    cfg = SupervisedConfig(
        tasks=tasks, steps_per_task=steps_per_task, seeds=seeds, seed=seed, hidden=parse_widths(hidden),
        lr=lr, activation=activation, layer_norm=layer_norm, methods=parse_methods(methods),
        cbp_rate=cbp_rate, maturity=maturity, redo_every=redo_every, shrink=shrink, sigma=sigma, l2=l2,
    )  # fmt: skip
    study_supervised(cfg, out, echo=click.echo, log=_err)


@study.command("plasticity-rl")
@click.option("--out", required=True, help="results directory (must not hold a study)")
@click.option("--env", default="CodedGrid-v0", show_default=True)
@click.option("--agent", default="stream-q", show_default=True, help="stream-q | stream-ac")
@click.option(
    "--schedule", default="permute", show_default=True, help="switch | permute | drift (what changes)"
)
@click.option("--changes", default=200, show_default=True, help="changes of the world over the lifetime")
@click.option("--every", default=2500, show_default=True, help="steps between changes")
@click.option("--tasks", default=200, show_default=True, help="distinct worlds, visited cyclically")
@click.option("--gamma", default=0.9, show_default=True, help="the agent's discount")
@click.option("--epsilon-end", default=0.1, show_default=True, help="stream-q's exploration after its decay")
@click.option("--seeds", default=5, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--hidden", default="32,32", show_default=True)
@click.option(
    "--remedy-options",
    default=None,
    help='JSON merged into each remedy\'s options, e.g. \'{"l2-init": {"l2": 1e-5}}\'',
)
@click.option(
    "--methods", default=None, help="comma-separated subset of backprop,cbp,redo,shrink-perturb,l2-init"
)
def plasticity_rl(
    out, env, agent, schedule, changes, every, tasks, gamma, epsilon_end, seeds, seed, hidden, methods,
    remedy_options,
) -> None:  # fmt: skip
    """Streaming RL whose dynamics change every K steps: per-change return per remedy."""
    from oakrl.study.rl import RLConfig, study_rl

    cfg = RLConfig(
        env=env, agent=agent, schedule=schedule, changes=changes, every=every, tasks=tasks, gamma=gamma,
        epsilon_end=epsilon_end, seeds=seeds, seed=seed, hidden=parse_widths(hidden),
        methods=parse_methods(methods),
    ).with_remedy_options(remedy_options)  # fmt: skip
    study_rl(cfg, out, echo=click.echo, log=_err)


@study.command("oak")
@click.option("--out", required=True, help="results directory (must not hold a study)")
@click.option("--env", default="Rooms-v0", show_default=True, help="Rooms-v0 or NineRooms-v0")
@click.option("--every", default=5000, show_default=True, help="steps between reward relocations")
@click.option("--relocations", default=7, show_default=True)
@click.option("--seeds", default=5, show_default=True)
@click.option("--seed", default=0, show_default=True, help="base seed")
@click.option("--stream", default="stream-q", show_default=True, help="the model-free stream learner")
@click.option("--window", default=1000, show_default=True, help="steps of the recovery measure's window")
@click.option("--threshold", default=0.5, show_default=True, help="recovered: rate >= this x optimal rate")
@click.option("--ablation/--no-ablation", default=True, show_default=True, help="also OaK, options unused")
@click.option("--second-world", default="Foraging-v0", show_default=True, help="'' for none")
@click.option("--second-steps", default=10000, show_default=True)
@click.option("--opt", "opts", multiple=True, help="OaK option KEY=VALUE for oak and oak-primitive both")
def oak_study(
    out, env, every, relocations, seeds, seed, stream, window, threshold, ablation, second_world,
    second_steps, opts,
) -> None:  # fmt: skip
    """OaK vs Dyna vs a stream learner on Rooms-v0: recovery after the goal moves, options found."""
    from oakrl.lab.parse import parse_options
    from oakrl.study.oak import OakStudyConfig, study_oak

    cfg = OakStudyConfig(
        env=env, every=every, relocations=relocations, seeds=seeds, seed=seed, stream=stream, window=window,
        threshold=threshold, ablation=ablation, second_world=second_world or None, second_steps=second_steps,
        oak_options=parse_options("oak", opts),
    )  # fmt: skip
    study_oak(cfg, out, echo=_err)


@study.command("prior-vs-scratch")
@click.option("--out", required=True, help="results directory (must not hold a study)")
@click.option("--env", default="CartPole-v1", show_default=True, help="CartPole-v1 or TextWorld-v0")
@click.option("--steps", default=100_000, show_default=True, help="agent steps per seed and condition")
@click.option("--seeds", default=5, show_default=True)
@click.option("--seed", default=0, show_default=True, help="base seed")
@click.option("--conditions", default="scratch,expert,mediocre,wrong", show_default=True)
@click.option("--threshold", default=None, type=float, help="return to reach [400 CartPole, 0.9 text]")
@click.option("--window", default=10, show_default=True, help="episodes averaged for steps to threshold")
@click.option("--demo-steps", default=20_000, show_default=True, help="transitions per recorded dataset")
@click.option("--noise", default=0.5, show_default=True, help="mediocre: probability of a random action")
@click.option("--demos-dir", default=None, help="use DIR/{expert,mediocre,wrong}.npz from `oakrl record`")
@click.option("--hidden", default="128,128", show_default=True)
@click.option("--bc-steps", default=2000, show_default=True, help="behaviour-cloning Adam steps")
@click.option("--bc-value/--no-bc-value", default=False, show_default=True, help="also fit the critic")
@click.option("--kl", default=0.0, show_default=True, help="initial pull towards the prior")
@click.option("--kl-half-life", default=0, show_default=True, help="steps for --kl to halve (0: constant)")
@click.option("--kl-adapt", default=0.0, show_default=True, help="rate at which reward's verdict scales --kl")
def prior_vs_scratch(
    out, env, steps, seeds, seed, conditions, threshold, window, demo_steps, noise, demos_dir, hidden,
    bc_steps, bc_value, kl, kl_half_life, kl_adapt,
) -> None:  # fmt: skip
    """Start from nothing or from expert / mediocre / wrong demonstrations; let reward correct."""
    from oakrl.study.prior import PriorConfig, study_prior

    cfg = PriorConfig(
        env=env, steps=steps, seeds=seeds, seed=seed,
        conditions=tuple(s.strip() for s in conditions.split(",") if s.strip()), threshold=threshold,
        window=window, demo_steps=demo_steps, noise=noise, demos_dir=demos_dir, hidden=parse_widths(hidden),
        bc_steps=bc_steps, bc_value=bc_value, kl=kl, kl_half_life=kl_half_life, kl_adapt=kl_adapt,
    )  # fmt: skip
    study_prior(cfg, out, echo=click.echo, log=_err)


@study.command("model-based")
@click.option("--out", required=True, help="results directory (must not hold a study)")
@click.option("--every", default=10_000, show_default=True, help="steps between goal relocations (K)")
@click.option("--changes", default=4, show_default=True, help="relocations measured (after a first segment)")
@click.option("--seeds", default=5, show_default=True)
@click.option("--seed", default=0, show_default=True, help="base seed")
@click.option("--agents", "agents_", default="stream-q,dyna,planner", show_default=True)
@click.option("--planning-steps", default=5, show_default=True, help="dyna, planner: updates per step")
@click.option("--simulations", default=16, show_default=True, help="planner: search simulations per step")
@click.option(
    "--hidden",
    default="linear",
    show_default=True,
    help="value learner: widths like 64,64, or linear (tabular)",
)
@click.option(
    "--model-hidden", default="64", show_default=True, help="dyna, planner: transition model widths"
)
@click.option("--gamma", default=0.95, show_default=True)
@click.option("--epsilon", default=0.1, show_default=True, help="stream-q/dyna exploration after K/2 steps")
@click.option("--window", default=1000, show_default=True, help="steps of the reward-rate window")
@click.option("--threshold", default=0.3, show_default=True, help="recovered: rate >= this x optimal rate")
def model_based(
    out, every, changes, seeds, seed, agents_, planning_steps, simulations, hidden, model_hidden, gamma,
    epsilon, window, threshold,
) -> None:  # fmt: skip
    """Rewards move, dynamics stay (Rooms-v0): recovery of stream-q vs dyna vs planner, model error."""
    from oakrl.study.model_based import ModelBasedConfig, study_model_based

    cfg = ModelBasedConfig(
        every=every, changes=changes, seeds=seeds, seed=seed,
        agents=tuple(s.strip() for s in agents_.split(",") if s.strip()), planning_steps=planning_steps,
        simulations=simulations, hidden=parse_widths(hidden, allow_linear=True),
        model_hidden=parse_widths(model_hidden, flag="--model-hidden"), gamma=gamma, epsilon=epsilon,
        window=window, threshold=threshold,
    )  # fmt: skip
    study_model_based(cfg, out, echo=click.echo, log=_err)


@study.command("market")
@click.option("--out", required=True, help="results directory (must not hold a study)")
@click.option("--sessions", default=100, show_default=True, help="independent market sessions (vmapped)")
@click.option("--seed", default=0, show_default=True)
@click.option("--alpha", default=0.15, show_default=True, help="Q-learning rate (the paper's baseline)")
@click.option("--beta", default=4e-6, show_default=True, help="exploration decay, epsilon_t = exp(-beta t)")
@click.option("--delta", default=0.95, show_default=True, help="discount")
@click.option(
    "--converge-periods", default=100_000, show_default=True, help="greedy strategies unchanged this long"
)
@click.option("--max-periods", default=5_000_000, show_default=True, help="cap on periods per session")
@click.option("--chunk", default=20_000, show_default=True, help="periods per compiled scan call")
@click.option("--frozen-check/--no-frozen-check", default=False, show_default=True,
              help="also run seller 0 learning against a frozen seller 1 (non-stationarity)")  # fmt: skip
def market(
    out, sessions, seed, alpha, beta, delta, converge_periods, max_periods, chunk, frozen_check
) -> None:
    """Calvano et al. 2020: two tabular Q-learners price in Market-v0; profit gain, impulse response."""
    from oakrl.study.market import MarketStudyConfig, study_market

    cfg = MarketStudyConfig(
        sessions=sessions, seed=seed, alpha=alpha, beta=beta, delta=delta,
        converge_periods=converge_periods, max_periods=max_periods, chunk=chunk, frozen_check=frozen_check,
    )  # fmt: skip
    study_market(cfg, out, echo=click.echo, log=_err)


@study.command("option-planning")
@click.option("--out", required=True, help="results directory (must not hold a study)")
@click.option(
    "--worlds", default="TwoRooms-v0,Rooms-v0", show_default=True, help="comma-separated (NineRooms-v0 too)"
)
@click.option(
    "--steps", default=50_000, show_default=True, help="lifetime per world and seed (the paper: 50,000)"
)
@click.option("--points", default=10, show_default=True, help="planning measured every steps/points steps")
@click.option("--seeds", default=10, show_default=True)
@click.option("--seed", default=0, show_default=True, help="base seed")
@click.option("--max-sweeps", default=150, show_default=True, help="planning cut (censoring) after this")
@click.option(
    "--orders",
    default=5,
    show_default=True,
    help="sweep orders per seed and point (counts averaged over them)",
)
@click.option(
    "--opt", "opts", multiple=True, help="agent option KEY=VALUE for both runs (epsilon=1 unless set)"
)
def option_planning(out, worlds, steps, points, seeds, seed, max_sweeps, orders, opts) -> None:
    """Sutton et al. 2023: planning with the agent's learned primitive vs option models."""
    from oakrl.lab.parse import parse_options
    from oakrl.study.option_planning import OptionPlanningConfig, study_option_planning

    options = {"epsilon": 1.0, **parse_options("oak", opts)}
    cfg = OptionPlanningConfig(
        worlds=tuple(w.strip() for w in worlds.split(",") if w.strip()), steps=steps, points=points,
        seeds=seeds, seed=seed, max_sweeps=max_sweeps, orders=orders, agent_options=options,
    )  # fmt: skip
    study_option_planning(cfg, out, echo=_err)


@study.command("goals")
@click.option("--out", required=True, help="results directory (must not hold a study)")
@click.option("--every", default=2000, show_default=True, help="steps per commanded goal")
@click.option(
    "--train-segments", default=40, show_default=True, help="training-pool goals before held-out ones"
)
@click.option(
    "--heldout", default="18,92,106,150,68,24", show_default=True, help="cells never commanded before"
)
@click.option("--seeds", default=5, show_default=True)
@click.option("--seed", default=0, show_default=True, help="base seed")
@click.option("--arms", default="goal-q,goal-q-commanded,planner,planner-goal-q", show_default=True)
@click.option("--gamma", default=0.95, show_default=True)
@click.option("--epsilon", default=0.05, show_default=True, help="goal-q's exploration after 2 segments")
@click.option("--lr", default=0.5, show_default=True, help="goal-q's table step size")
@click.option("--init-value", default=0.0, show_default=True, help="goal-q's table at the start")
@click.option("--num-simulations", default=16, show_default=True, help="both planner arms")
@click.option("--prior-temperature", default=0.1, show_default=True, help="planner-goal-q's prior")
def goals_study(
    out, every, train_segments, heldout, seeds, seed, arms, gamma, epsilon, lr, init_value,
    num_simulations, prior_temperature,
) -> None:  # fmt: skip
    """goal-q on Rooms-v0 goals never commanded before, against the exact optimal share."""
    from oakrl.study.goals import GoalsConfig, study_goals

    try:
        cells = tuple(int(s) for s in heldout.split(",") if s.strip())
    except ValueError:
        from oakrl.errors import ConfigError

        raise ConfigError(f"--heldout takes cell indices like 18,92, got {heldout!r}") from None
    cfg = GoalsConfig(
        every=every, train_segments=train_segments, heldout=cells, seeds=seeds, seed=seed,
        arms=tuple(s.strip() for s in arms.split(",") if s.strip()), gamma=gamma, epsilon=epsilon,
        lr=lr, init_value=init_value, num_simulations=num_simulations,
        prior_temperature=prior_temperature,
    )  # fmt: skip
    study_goals(cfg, out, echo=_err)


@study.command("learners")
@click.option("--out", required=True, help="results directory (must not hold a study)")
@click.option(
    "--envs",
    default=",".join(
        ("CartPole-v1", "Acrobot-v1", "Breakout-MinAtar", "Asterix-MinAtar", "SpaceInvaders-MinAtar")
    ),
    show_default=True,
    help="comma-separated environments",
)
@click.option(
    "--learners",
    default="stream-q:obgd,stream-q:adaptive-q,stream-q:intentional,stream-ac:obgd,stream-ac:intentional",
    show_default=True,
    help="comma-separated agent:optimizer",
)
@click.option(
    "--steps", default=100_000, show_default=True, help="agent steps per seed, every learner and env"
)
@click.option("--seeds", default=5, show_default=True)
@click.option("--seed", default=0, show_default=True, help="base seed (the same keys for every learner)")
@click.option("--chunk", default=10_000, show_default=True, help="steps per compiled chunk")
@click.option("--bins", default=20, show_default=True, help="windows of the learning curve (AUC)")
@click.option("--random-steps", default=20_000, show_default=True, help="steps of the random policy per seed")
@click.option("--boot", default=2000, show_default=True, help="bootstrap resamples of the aggregate CI")
@click.option("--reference", default=None, help="best-known scores ENV=SCORE,... (default: see the module)")
def learners(out, envs, learners, steps, seeds, seed, chunk, bins, random_steps, boot, reference) -> None:
    """Streaming learners (ObGD, Adaptive Q(lambda), Intentional TD/PG) at equal steps on a suite."""
    from oakrl.study.learners import LearnersConfig, parse_reference, study_learners

    cfg = LearnersConfig(
        envs=tuple(s.strip() for s in envs.split(",") if s.strip()),
        learners=tuple(s.strip() for s in learners.split(",") if s.strip()),
        steps=steps, seeds=seeds, seed=seed, chunk=chunk, bins=bins, random_steps=random_steps, boot=boot,
        reference=parse_reference(reference),
    )  # fmt: skip
    study_learners(cfg, out, echo=click.echo, log=_err)


@study.command("memory")
@click.option("--out", required=True, help="results directory (must not hold a study)")
@click.option("--envs", default="Rooms-v0,CodedGrid-v0", show_default=True, help="comma-separated worlds")
@click.option("--steps", default=40_000, show_default=True, help="lifetime per world and seed")
@click.option("--segments", default=10, show_default=True, help="task segments (changes: segments - 1)")
@click.option("--seeds", default=5, show_default=True)
@click.option("--seed", default=0, show_default=True, help="base seed")
@click.option(
    "--memory", "memories", multiple=True, help="stream-q memory table, e.g. '{size=512,k=8,mix=0.5}'; repeat"
)
@click.option("--epsilon", default=0.1, show_default=True, help="exploration after the first half-segment")
@click.option("--window", default=1000, show_default=True, help="steps of the recovery measure's window")
@click.option("--threshold", default=0.3, show_default=True, help="recovered: rate >= this x optimal rate")
def memory_study(out, envs, steps, segments, seeds, seed, memories, epsilon, window, threshold) -> None:
    """stream-q with vs without episodic memory: recovery, forgetting on return, early efficiency."""
    from oakrl.study.memory import DEFAULT_MEMORY, MemoryStudyConfig, parse_memory, study_memory

    tables = tuple(parse_memory(m) for m in memories)
    cfg = MemoryStudyConfig(
        envs=tuple(s.strip() for s in envs.split(",") if s.strip()), steps=steps, segments=segments,
        seeds=seeds, seed=seed, memories=tables or (DEFAULT_MEMORY,), epsilon=epsilon, window=window,
        threshold=threshold,
    )  # fmt: skip
    study_memory(cfg, out, echo=click.echo, log=_err)
