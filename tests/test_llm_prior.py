"""The language-model prior end to end with a tiny, randomly initialised GPT-2 built here.

Nothing is downloaded: the tokenizer is a word-level one over the text world's own words,
built in-process, and the model is a 1-layer GPT-2; both are saved to a temporary directory
and loaded back the way a real local model path is (AutoModelForCausalLM, local_files_only).
Skipped when the llm extra (torch, transformers) is not installed.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from oakrl.agents import make_agent  # noqa: E402
from oakrl.envs import make_env  # noqa: E402
from oakrl.envs.text_world import ACTIONS, GOAL, OBSERVATIONS, expert_action  # noqa: E402
from oakrl.errors import ConfigError  # noqa: E402
from oakrl.priors.llm import action_scores, load_lm, main, prompt, save_table, text_world_table  # noqa: E402


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    words = sorted(
        {w for text in (*OBSERVATIONS, *ACTIONS, GOAL, "Action:") for w in re.findall(r"\w+|[^\w\s]", text)}
    )
    vocab = {w: i for i, w in enumerate(["[UNK]", "[PAD]", *words])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]")
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(vocab), n_positions=64, n_embd=16, n_layer=1, n_head=2)
    model = GPT2LMHeadModel(config)
    path = tmp_path_factory.mktemp("tiny-gpt2")
    tokenizer.save_pretrained(path)
    model.save_pretrained(path)
    return path


def test_scores_are_the_lm_log_likelihood_of_the_action(tiny_lm):
    model, tokenizer = load_lm(tiny_lm)
    scores = action_scores(model, tokenizer, [prompt(OBSERVATIONS[4], GOAL)], list(ACTIONS))
    # By hand for one pair: one forward pass over prompt + action, sum of the action's token log-probs.
    p_ids = tokenizer(prompt(OBSERVATIONS[4], GOAL))["input_ids"]
    a_ids = tokenizer(" take the apple", add_special_tokens=False)["input_ids"]
    assert len(a_ids) == 3
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([p_ids + a_ids])).logits[0].double(), -1)
    by_hand = sum(float(logp[len(p_ids) - 1 + j, t]) for j, t in enumerate(a_ids))
    # The model computes in float32, one padded batch against one unpadded row: their logits may
    # differ in the last float32 bits (torch's CPU kernels pick paths by memory alignment; a
    # fresh-clone CI run saw 8.7e-8 on -9.92). A wrong token offset moves the sum by far more.
    assert scores[0, 2] == pytest.approx(by_hand, rel=1e-6)
    table = text_world_table(tiny_lm)
    assert table.shape == (15, 4) and np.isfinite(table).all()
    np.testing.assert_allclose(np.log(np.exp(table).sum(1)), 0.0, atol=1e-5)  # log-probabilities over actions
    assert np.ptp(table, axis=1).max() > 0  # a real (random) model does not score all actions alike


def test_load_lm_refuses_what_is_not_a_local_model(tmp_path):
    with pytest.raises(ConfigError, match="not a local directory"):
        load_lm(tmp_path / "gpt2")  # a hub name is never fetched
    with pytest.raises(ConfigError, match="cannot load a causal LM"):
        load_lm(tmp_path)


def test_lm_prior_runs_end_to_end_and_reward_overrules_a_wrong_one(tiny_lm, tmp_path, capsys):
    from oakrl.lab.stream import run_jax

    # The command that turns a local model into a table file, then the agent running on it.
    assert main([str(tiny_lm), "--out", str(tmp_path / "tiny.npz")]) == 0
    assert "wrote" in capsys.readouterr().out
    handle = make_env("TextWorld-v0")
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0, impl="unsafe_rbg"), i))(np.arange(2))

    # A prior forced to be wrong: "sleep" 20x likelier than anything else, in every sentence.
    wrong = np.full((15, 4), -3.0, np.float32)
    wrong[:, 3] = 0.0
    save_table(tmp_path / "wrong.npz", wrong - np.log(np.exp(wrong).sum(1, keepdims=True)))
    results = {}
    for name in ("tiny", "wrong"):
        agent = make_agent(
            "prior-ac",
            lm_table=str(tmp_path / f"{name}.npz"),
            prior_beta=1.0,
            hidden=(16, 16),
        )
        rows = []
        carry, _, _ = run_jax(agent, handle, 6000, keys, 3000, 1000, lambda r, rows=rows: rows.append(r))
        step = np.concatenate([r.step for r in rows])
        ret = np.concatenate([r.ret for r in rows])
        results[name] = (carry, step, ret)
    carry, step, ret = results["wrong"]
    assert np.array_equal(
        np.asarray(carry.agent.table[0]), wrong - np.log(np.exp(wrong).sum(1, keepdims=True))
    )
    assert ret[step <= 300].mean() < 0.6  # the prior alone mostly sleeps
    assert ret[step > 4000].mean() > 0.9  # reward overruled it
    # The acting policy softmax(f(s) + table[s]) now prefers the right action where the prior did not.
    from oakrl.agents.common import net
    from oakrl.learn.normalize import welford_var

    state = jax.tree.map(lambda x: x[0], carry.agent)
    stats = state.norm.obs.stats
    see = [0, 3, 6, 9, 12]  # "You see an apple." in each room
    eye = jnp.eye(15)[np.array(see)]
    z = (eye - stats.mean) / jnp.sqrt(welford_var(stats) + 1e-8)
    p_net = net((15,), 4, (16, 16), 0.9)
    logits = jax.vmap(lambda x: p_net.apply(state.policy, x))(z) + eye @ state.table
    probs = np.asarray(jax.nn.softmax(logits))
    assert (np.asarray(jax.vmap(expert_action)(eye)) == 2).all()
    assert probs[:, 2].mean() > 0.5 and probs[:, 3].mean() < 0.3  # take, not sleep
    # The tiny model's own (random) prior is learned past as well.
    _, step, ret = results["tiny"]
    assert ret[step > 4000].mean() > 0.9


def test_lm_table_must_fit_the_world(tmp_path):
    np.savez(tmp_path / "bad.npz", table=np.zeros((3, 4), np.float32))
    handle = make_env("TextWorld-v0")
    agent = make_agent("prior-ac", lm_table=str(tmp_path / "bad.npz"))
    with pytest.raises(ConfigError, match="one-hot observations x actions"):
        agent.init(jax.random.key(0), handle.obs_spec, handle.action_spec)
    with pytest.raises(ConfigError, match="not an LM prior table"):
        make_agent("prior-ac", lm_table=str(tmp_path / "none.npz"))
