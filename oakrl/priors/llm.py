"""Language-model priors over listed actions (GLAM-style scoring; Carta et al. 2023).

For an observation sentence o and each action sentence a of the world, the prior's score is
the causal LM's log-likelihood of the action's tokens after a prompt holding the goal and o:

    score(a | o) = (1/|a|) sum_j log p_LM(a_j | prompt(o), a_<j)      prior = log_softmax_a score

averaged over the action's tokens by default (`per_token=True`): summed, as GLAM does, an action
of three tokens pays about two tokens' worth of log-likelihood more than a one-word action
before the LM says anything about the situation (with a vocabulary of 50k, ~20 nats).

Design: the language model never enters the compiled stream. A text world with a finite set
of observation sentences (TextWorld-v0: 15) is scored once, here, in PyTorch, into a table
[num_observations, num_actions]; the JAX agent (prior-ac, `lm_table=`) reads the row of the
current observation (its one-hot times the table) and acts from softmax(f_theta(s) + beta *
table[s]), where f_theta is a correction learned from reward. So the LM costs one batch of
forward passes per world instead of one per step, the stream stays jitted and vmapped, and
reward can overrule the LM wherever it is wrong (the correction grows until it does).

Loading takes a local directory of any Hugging Face causal LM (AutoModelForCausalLM and
AutoTokenizer, local_files_only=True): nothing is ever downloaded. Needs the optional extra
`pip install -e ".[llm]"` (torch CPU, transformers).

    python -m oakrl.priors.llm /path/to/local/model --out text_prior.npz
    oakrl run --env TextWorld-v0 --agent prior-ac --opt lm_table=text_prior.npz --opt prior_beta=1.0
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from oakrl.errors import ConfigError
from oakrl.io import atomic_path


def prompt(observation: str, goal: str) -> str:
    """The text the LM continues with an action (GLAM's layout: goal, observation, action)."""
    return f"{goal}\n{observation}\nAction:"


def load_lm(path: str | os.PathLike) -> tuple[Any, Any]:
    """(model, tokenizer) of a local Hugging Face causal LM directory; ConfigError otherwise."""
    try:
        import torch  # noqa: F401
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError:
        raise ConfigError('the language-model prior needs the llm extra: pip install -e ".[llm]"') from None
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(
            f"LM path {path} is not a local directory (a Hugging Face model saved with save_pretrained)"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise ConfigError(f"cannot load a causal LM from {path}: {first}") from None
    model.eval()
    return model, tokenizer


def action_scores(
    model: Any, tokenizer: Any, prompts: Sequence[str], actions: Sequence[str], per_token: bool = False
) -> np.ndarray:
    """log p_LM(action | prompt), summed over the action's tokens (averaged with `per_token`):
    float64 [len(prompts), len(actions)].

    Every (prompt, action) pair is one right-padded row of a single batch; the action's tokens are
    the ones after the prompt's, tokenised separately so the split is exact.
    """
    import torch

    rows, spans = [], []
    for p in prompts:
        p_ids = tokenizer(p)["input_ids"]
        for a in actions:
            a_ids = tokenizer(" " + a, add_special_tokens=False)["input_ids"]
            if not a_ids:
                raise ConfigError(f"the tokenizer turns action {a!r} into no tokens")
            rows.append(list(p_ids) + list(a_ids))
            spans.append((len(p_ids), len(p_ids) + len(a_ids)))
    width = max(len(r) for r in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits.double()
    logp = torch.log_softmax(logits, dim=-1)
    scores = np.zeros(len(rows))
    for i, (start, end) in enumerate(spans):
        # Token t is predicted by the logits at position t - 1.
        targets = ids[i, start:end]
        scores[i] = float(logp[i, start - 1 : end - 1].gather(1, targets[:, None]).sum())
        if per_token:
            scores[i] /= end - start
    return scores.reshape(len(prompts), len(actions))


def prior_table(
    model: Any,
    tokenizer: Any,
    observations: Sequence[str],
    actions: Sequence[str],
    goal: str,
    per_token: bool = True,
) -> np.ndarray:
    """log_softmax over actions of the LM scores: float32 [len(observations), len(actions)]."""
    scores = action_scores(model, tokenizer, [prompt(o, goal) for o in observations], actions, per_token)
    scores = scores - scores.max(axis=1, keepdims=True)
    return (scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))).astype(np.float32)


def text_world_table(model_path: str | os.PathLike, per_token: bool = True) -> np.ndarray:
    """The LM prior table of TextWorld-v0 from a local model: float32 [15, 4]."""
    from oakrl.envs.text_world import ACTIONS, GOAL, OBSERVATIONS

    model, tokenizer = load_lm(model_path)
    return prior_table(model, tokenizer, OBSERVATIONS, ACTIONS, GOAL, per_token)


def save_table(path: str | os.PathLike, table: np.ndarray, model: str = "") -> Path:
    """Writes a table file prior-ac reads (`lm_table=`): .npz with table, observations, actions."""
    from oakrl.envs.text_world import ACTIONS, OBSERVATIONS

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        np.savez(
            tmp,
            table=np.asarray(table, np.float32),
            observations=np.array(OBSERVATIONS),
            actions=np.array(ACTIONS),
            model=np.array(str(model)),
        )
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m oakrl.priors.llm", description="Score TextWorld-v0's actions with a local causal LM."
    )
    parser.add_argument("model", help="local directory of a Hugging Face causal LM")
    parser.add_argument("--out", required=True, help="table file (.npz) for prior-ac's lm_table option")
    parser.add_argument(
        "--sum", action="store_true", help="sum the action's token log-probs (GLAM), not average"
    )
    args = parser.parse_args(argv)
    try:
        table = text_world_table(args.model, per_token=not args.sum)
        path = save_table(args.out, table, args.model)
    except ConfigError as e:
        print(f"oakrl: {e}", file=sys.stderr)
        return 2
    from oakrl.envs.text_world import ACTIONS, OBSERVATIONS

    for o, row in zip(OBSERVATIONS, table, strict=True):
        best = ACTIONS[int(np.argmax(row))]
        print(f"{o:<60} -> {best:<15} p={float(np.exp(row.max())):.2f}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
