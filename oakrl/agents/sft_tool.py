"""sft-tool: stream AC(lambda) that may call "SFT on my best episodes" as an action.

"Making SFT a tool call" (Patel): the agent decides when to teach itself by supervised learning
on its own experience. Here the decision is part of the policy: besides its action in the world
a, the policy emits a tool bit u ~ Bernoulli(sigmoid(l_u(s))) from one extra output of the
actor network; pi(a, u | s) = pi(a | s) pi(u | s). Both are learned by the same stream AC update,
so the tool is credited by reward like any other action (the eligibility trace carries
grad log pi(u|s) to the TD errors that follow a call). An optional `tool_cost` is subtracted
from the reward of every step that called it.

When u = 1, right after choosing it and before acting, the policy takes `sft_steps` steps of
supervised learning (plain SGD, `sft_lr`) of cross-entropy on (observation, action) pairs of
the best recent episodes, kept in a fixed-size memory in the state:

  * the running episode is written to a buffer of `episode_len` steps (longer episodes keep
    their first `episode_len` steps);
  * when it ends, every stored episode's score decays by `memory_decay` (so "best" means best
    *recent*) and the new episode replaces the lowest-scoring one if it scores at least as much.

All of it has fixed shapes (masks, `lax.cond`), so it runs under jit, scan and vmap. `info`
logs the call (`sft_call`: 0/1 this step, so the lab's chunk mean is the call rate; the
running count is `state.calls`), the call probability (`p_sft`) and the memory's mean score.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from oakrl.agents.common import ActorCriticOptions, DiscreteOnly, PlasticityOptions, configure
from oakrl.agents.skeleton import Transition
from oakrl.agents.stream_ac import Actor, ActorStart, actor_critic
from oakrl.core.config import option
from oakrl.core.types import Agent, ArraySpec, DiscreteSpec, Spec, TimeStep
from oakrl.errors import ConfigError


class Memory(NamedTuple):
    """The best recent episodes: K slots of up to L steps."""

    obs: jax.Array  # [K, L, *obs_shape] normalised observations as the policy saw them
    actions: jax.Array  # [K, L] int32
    length: jax.Array  # [K] int32 valid steps per slot (0: empty)
    score: jax.Array  # [K] float32 episode return, decayed per later episode; -inf when empty


class Episode(NamedTuple):
    """The running episode."""

    obs: jax.Array  # [L, *obs_shape]
    actions: jax.Array  # [L] int32
    length: jax.Array  # [] int32 steps written
    ret: jax.Array  # [] float32 return so far (raw reward)


class ToolExtra(NamedTuple):
    """What sft-tool keeps besides stream AC's state (ACState.extra)."""

    prev_call: jax.Array  # [] int32 0/1: did the last step call the tool
    episode: Episode
    memory: Memory
    calls: jax.Array  # [] int32 tool calls so far


@dataclasses.dataclass(frozen=True)
class SFTToolConfig(DiscreteOnly, PlasticityOptions, ActorCriticOptions):
    """sft-tool's options: stream AC's, the episode memory's and the tool call's."""

    NAME = "sft-tool"
    memory_episodes: int = option(4, "episodes K the memory keeps", ge=1)
    episode_len: int = option(500, "steps L kept of each episode", ge=1)
    memory_decay: float = option(0.95, "stored scores shrink by this per finished episode", gt=0, le=1)
    sft_steps: int = option(1, "SGD steps per call", ge=1)
    sft_batch: int = option(16, "memory rows per SGD step", ge=1)
    sft_lr: float = option(0.05, "SGD step size of a call", gt=0)
    tool_cost: float = option(0.0, "subtracted from the reward of a step that called the tool", ge=0)
    tool_bias: float = option(-2.0, "initial tool logit: p(call) = sigmoid(-2) ~ 0.12 at the start")

    def validate(self) -> None:
        super().validate()
        if not self.hidden:
            raise ConfigError(
                "sft-tool needs hidden layers (the tool's prior is its head bias); hidden=linear has none"
            )


def sft_update(
    apply, params: Any, memory: Memory, key: jax.Array, steps: int, batch: int, lr: float, num_actions: int
) -> tuple[Any, jax.Array]:
    """`steps` SGD steps of cross-entropy of the action logits on memory rows drawn uniformly.

    apply(params, obs) -> [A + 1] logits (the last is the tool's, left out). Rows: a non-empty
    slot uniformly, then one of its steps uniformly. An empty memory changes nothing. Plain SGD
    (no optimiser state): a call is a few small steps in the direction of the memory's actions.
    Returns (params, loss before the first step).
    """
    valid = memory.length > 0

    def loss(p, k):
        k_slot, k_t = jax.random.split(k)
        slot = jax.random.categorical(k_slot, jnp.where(valid, 0.0, -jnp.inf), shape=(batch,))
        t = jax.random.randint(k_t, (batch,), 0, jnp.maximum(memory.length[slot], 1))
        obs, act = memory.obs[slot, t], memory.actions[slot, t]
        logits = jax.vmap(lambda x: apply(p, x)[:num_actions])(obs)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, act)
        return jnp.mean(ce) * jnp.any(valid)

    def one(p, k):
        value, g = jax.value_and_grad(loss)(p, k)
        return jax.tree.map(lambda w, d: w - lr * d, p, g), value

    params, losses = jax.lax.scan(one, params, jax.random.split(key, steps))
    return params, losses[0]


def remember(memory: Memory, episode: Episode, decay: float) -> Memory:
    """Adds a finished episode: scores decay, then it replaces the lowest one if it is at least as good."""
    # Older episodes lose standing whatever their sign: positive scores shrink, negative ones grow.
    score = memory.score * jnp.where(memory.score > 0, decay, 1.0 / decay)
    worst = jnp.argmin(score)
    keep = episode.ret >= score[worst]
    put = lambda arr, x: arr.at[worst].set(jnp.where(keep, x, arr[worst]))  # noqa: E731
    return Memory(
        obs=put(memory.obs, episode.obs),
        actions=put(memory.actions, episode.actions),
        length=put(memory.length, episode.length),
        score=put(score, episode.ret),
    )


def sft_tool(config: SFTToolConfig | None = None, **overrides) -> Agent:
    """Stream AC(lambda) with an SFT tool call (see module docstring). Discrete actions."""
    cfg = configure(SFTToolConfig, config, overrides)
    return actor_critic("sft-tool", cfg, tool_actor(cfg))


def tool_actor(cfg: SFTToolConfig) -> Actor:
    """Stream AC's actor with one more output, the tool logit, and the memory a call learns from."""
    entropy = cfg.entropy
    k_mem, l_ep = cfg.memory_episodes, cfg.episode_len

    def init(key: jax.Array, obs_spec: ArraySpec, action_spec: Spec, nets) -> ActorStart:
        if not isinstance(action_spec, DiscreteSpec):
            raise ConfigError("sft-tool needs discrete actions")
        n = action_spec.num_values
        k_v, k_p = jax.random.split(key)
        v_net, p_net = nets(obs_spec.shape, n + 1)
        v, p = v_net.init(k_v, obs_spec.shape), p_net.init(k_p, obs_spec.shape)
        # The tool logit starts at tool_bias (its head weights are sparse, its bias sets the prior).
        p["head"]["bias"] = p["head"]["bias"].at[n].set(cfg.tool_bias)
        shape = tuple(obs_spec.shape)
        extra = ToolExtra(
            prev_call=jnp.zeros((), jnp.int32),
            episode=Episode(
                jnp.zeros((l_ep, *shape), jnp.float32),
                jnp.zeros(l_ep, jnp.int32),
                jnp.zeros((), jnp.int32),
                jnp.zeros((), jnp.float32),
            ),
            memory=Memory(
                jnp.zeros((k_mem, l_ep, *shape), jnp.float32),
                jnp.zeros((k_mem, l_ep), jnp.int32),
                jnp.zeros(k_mem, jnp.int32),
                jnp.full(k_mem, -jnp.inf, jnp.float32),
            ),
            calls=jnp.zeros((), jnp.int32),
        )
        return ActorStart(v, p, jnp.zeros((), jnp.int32), extra)

    def observe(extra: ToolExtra, ts: TimeStep) -> TimeStep:
        # The tool's cost is part of the reward of the step that called it.
        called = extra.prev_call.astype(jnp.float32)
        return ts._replace(reward=ts.reward.astype(jnp.float32) - cfg.tool_cost * called)

    def objective(out: jax.Array, extra: ToolExtra, t: Transition, delta: jax.Array, ctx):
        # pi(a, u | s) = pi(a | s) pi(u | s): the tool bit is credited by reward like the action.
        n = out.shape[0] - 1
        logp = jax.nn.log_softmax(out[:n])
        tool = out[n]
        log_u = jnp.where(extra.prev_call > 0, jax.nn.log_sigmoid(tool), jax.nn.log_sigmoid(-tool))
        ent = -jnp.sum(jnp.exp(logp) * logp)
        pu = jax.nn.sigmoid(tool)
        ent_u = -(pu * jax.nn.log_sigmoid(tool) + (1 - pu) * jax.nn.log_sigmoid(-tool))
        return logp[t.action] + log_u + entropy * jnp.sign(delta) * (ent + ent_u), (ent, ())

    def act(extra: ToolExtra, policy, p_net, t: Transition, aux, delta, ctx, key: jax.Array):
        n = int(policy["head"]["kernel"].shape[-1]) - 1
        # The transition just learned from belongs to the running episode; at its end, remember it.
        ep = extra.episode
        write = t.has_prev & (ep.length < l_ep)
        idx = jnp.minimum(ep.length, l_ep - 1)
        ep = Episode(
            obs=ep.obs.at[idx].set(jnp.where(write, t.obs, ep.obs[idx])),
            actions=ep.actions.at[idx].set(jnp.where(write, t.action, ep.actions[idx])),
            length=ep.length + write.astype(jnp.int32),
            ret=ep.ret + t.ts.reward.astype(jnp.float32) * t.learn,
        )
        finished = t.done & t.has_prev
        memory = jax.tree.map(
            lambda new, old: jnp.where(finished, new, old),
            remember(extra.memory, ep, cfg.memory_decay),
            extra.memory,
        )
        ep = jax.tree.map(lambda x: jnp.where(finished, jnp.zeros_like(x), x), ep)

        # Decide the tool call in s', run it if chosen, then act with the policy it leaves.
        k_call, k_sft, k_act = jax.random.split(key, 3)
        tool_logit = p_net.apply(policy, t.next_obs)[n]
        call = jax.random.bernoulli(k_call, jax.nn.sigmoid(tool_logit))

        def do_sft(p):
            return sft_update(p_net.apply, p, memory, k_sft, cfg.sft_steps, cfg.sft_batch, cfg.sft_lr, n)[0]

        policy = jax.lax.cond(call, do_sft, lambda p: p, policy)
        action = jax.random.categorical(k_act, p_net.apply(policy, t.next_obs)[:n]).astype(jnp.int32)

        filled = memory.length > 0
        info = {
            "sft_call": call.astype(jnp.float32),
            "p_sft": jax.nn.sigmoid(tool_logit),
            "memory_score": jnp.sum(jnp.where(filled, memory.score, 0.0)) / jnp.maximum(jnp.sum(filled), 1),
        }
        extra = ToolExtra(
            prev_call=call.astype(jnp.int32),
            episode=ep,
            memory=memory,
            calls=extra.calls + call.astype(jnp.int32),
        )
        return extra, policy, action, info

    return Actor(init, lambda extra, t: (), objective, act, observe)
