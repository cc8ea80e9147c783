"""Decision-time planning: Gumbel MuZero tree search (mctx) over a learned model.

The search runs inside the agent's compiled step for one state (a batch of one; the lab's
vmap over seeds batches it further). The caller supplies two functions of an embedding
(here: a raw observation, as the transition model sees it):

    evaluate(embedding [D]) -> (prior_logits [A], value [])        the agent's policy / value
    transition(embedding [D], action []) -> (reward [], discount [], next embedding [D])  the model

Gumbel MuZero (Danihelka et al. 2022) samples the root's candidate actions without
replacement with Gumbel noise and halves them sequentially, so it improves on the prior
policy even with few simulations (e.g. 16 for 4 actions); its chosen action is itself a
sample, which is the agent's exploration.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import mctx


class SearchResult(NamedTuple):
    action: jax.Array  # [] int32 the action the search chose
    weights: jax.Array  # [A] the improved policy at the root
    value: jax.Array  # [] the root's value after the search


def tree_search(
    key: jax.Array,
    embedding: jax.Array,
    evaluate: Callable[[jax.Array], tuple[jax.Array, jax.Array]],
    transition: Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array, jax.Array]],
    num_simulations: int,
    max_depth: int | None = None,
    gumbel_scale: float = 1.0,
    value_scale: float = 0.1,
) -> SearchResult:
    """One Gumbel MuZero search from `embedding`.

    Q-values enter the root's improved policy as (50 + max visits) * value_scale * q, without
    mctx's default min-max rescaling to [0, 1]: with a learned model, rescaling turns tiny
    reward-prediction noise (or a flat value function) into full-size preferences, and the
    search then follows noise depth-first.
    """
    logits, value = evaluate(embedding)
    root = mctx.RootFnOutput(prior_logits=logits[None], value=value[None], embedding=embedding[None])

    def recurrent_fn(params, rng_key, action, emb):
        del params, rng_key

        def one(e, a):
            reward, discount, nxt = transition(e, a)
            prior, v = evaluate(nxt)
            return mctx.RecurrentFnOutput(reward=reward, discount=discount, prior_logits=prior, value=v), nxt

        return jax.vmap(one)(emb, action)

    out = mctx.gumbel_muzero_policy(
        params=(),
        rng_key=key,
        root=root,
        recurrent_fn=recurrent_fn,
        num_simulations=num_simulations,
        max_depth=max_depth,
        gumbel_scale=gumbel_scale,
        qtransform=functools.partial(
            mctx.qtransform_completed_by_mix_value, value_scale=value_scale, rescale_values=False
        ),
    )
    root_value = out.search_tree.node_values[0, 0]
    return SearchResult(out.action[0].astype(jnp.int32), out.action_weights[0], root_value)
