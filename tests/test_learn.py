"""Streaming learning pieces checked against numbers worked out by hand.

Every expected value below is computed in the comments next to it; the code under test is
never used to produce an expected value.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from oakrl.learn.init import sparse_init
from oakrl.learn.nets import MLP, MinAtarCNN, held_cotangent, layer_norm, leaky_relu, make_network
from oakrl.learn.normalize import (
    obs_norm_init,
    obs_norm_update,
    reward_scale_init,
    reward_scale_update,
    welford_init,
    welford_update,
    welford_var,
)
from oakrl.learn.obgd import adaptive_obgd, obgd
from oakrl.learn.traces import TraceState, trace_in_effect, trace_init, trace_reset, trace_update


def close(actual, expected, rtol=1e-6, atol=1e-7):
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=rtol, atol=atol)


def tree_close(actual, expected, rtol=1e-6, atol=1e-7):
    """Compares a dict of arrays with a dict of (nested-list) expected values, shapes included."""
    assert set(actual) == set(expected)
    for k, e in expected.items():
        e = np.asarray(e, np.float64)
        assert np.shape(actual[k]) == e.shape, k
        close(actual[k], e, rtol, atol)


# Two-leaf parameter pytree used throughout the optimiser tests.
PARAMS = {"a": jnp.array([1.0, 2.0]), "b": jnp.array([[3.0]])}
G1 = {"a": jnp.array([0.5, -1.0]), "b": jnp.array([[2.0]])}  # ||G1||_1 = 0.5 + 1 + 2 = 3.5
G2 = {"a": jnp.array([1.0, 0.0]), "b": jnp.array([[-1.0]])}


# --------------------------------------------------------------------------- traces


def test_trace_init_is_zeros_like_params():
    tr = trace_init(PARAMS)
    tree_close(tr.trace, {"a": [0.0, 0.0], "b": [[0.0]]})
    assert tr.trace["b"].shape == (1, 1)


def test_trace_update_accumulates_with_decay():
    # decay = gamma * lambda = 0.5 * 0.5 = 0.25
    tr = trace_update(trace_init(PARAMS), G1, 0.25)
    # z1 = 0.25 * 0 + G1 = G1
    tree_close(tr.trace, G1)
    tr = trace_update(tr, G2, 0.25)
    # z2 = 0.25 * z1 + G2: a = [0.125 + 1, -0.25 + 0] = [1.125, -0.25]; b = 0.5 - 1 = -0.5
    tree_close(tr.trace, {"a": [1.125, -0.25], "b": [[-0.5]]})


def test_trace_reset_zeroes_where_mask_true():
    tr = TraceState({"a": jnp.array([1.0, -2.0]), "b": jnp.array([[3.0]])})
    tree_close(trace_reset(tr, jnp.array(False)).trace, {"a": [1.0, -2.0], "b": [[3.0]]})
    tree_close(trace_reset(tr, jnp.array(True)).trace, {"a": [0.0, 0.0], "b": [[0.0]]})
    # Per-seed masks under vmap: rows 0 and 2 reset, row 1 kept.
    batched = TraceState(jnp.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
    out = jax.vmap(trace_reset)(batched, jnp.array([True, False, True]))
    close(out.trace, [[0.0, 0.0], [3.0, 4.0], [0.0, 0.0]])


# --------------------------------------------------------------------------- ObGD


def test_obgd_bound_active_first_update():
    # lr = 1, kappa = 2, gamma * lambda = 0.25, delta = 0.5
    opt = obgd(learning_rate=1.0, gamma=0.5, lamda=0.5, kappa=2.0)
    state = opt.init(PARAMS)
    upd, state = opt.update(G1, state, delta=jnp.float32(0.5))
    # z = G1, ||z||_1 = 3.5, delta_bar = max(0.5, 1) = 1
    # M = 1 * 2 * 1 * 3.5 = 7 > 1 -> step = 1 / 7
    close(state.step_size, 1.0 / 7.0)
    # updates = (1/7) * 0.5 * z = z / 14
    tree_close(upd, {"a": [0.5 / 14, -1.0 / 14], "b": [[2.0 / 14]]})
    # no reset: the trace is kept
    tree_close(state.trace, G1)


def test_obgd_bound_inactive_keeps_lr():
    # lr = 0.1: M = 0.1 * 2 * 1 * 3.5 = 0.7 <= 1 -> step = lr = 0.1
    opt = obgd(learning_rate=0.1, gamma=0.5, lamda=0.5, kappa=2.0)
    upd, state = opt.update(G1, opt.init(PARAMS), delta=jnp.float32(0.5))
    close(state.step_size, 0.1)
    # updates = 0.1 * 0.5 * z = 0.05 * z
    tree_close(upd, {"a": [0.025, -0.05], "b": [[0.1]]})


def test_obgd_large_negative_delta_uses_abs_delta_in_bound():
    # lr = 0.1, delta = -2 -> delta_bar = 2; M = 0.1 * 2 * 2 * 3.5 = 1.4 > 1
    # step = 0.1 / 1.4 = 1/14; updates = (1/14) * (-2) * z = -z / 7
    opt = obgd(learning_rate=0.1, gamma=0.5, lamda=0.5, kappa=2.0)
    upd, state = opt.update(G1, opt.init(PARAMS), delta=jnp.float32(-2.0))
    close(state.step_size, 1.0 / 14.0)
    tree_close(upd, {"a": [-0.5 / 7, 1.0 / 7], "b": [[-2.0 / 7]]})


def test_obgd_two_consecutive_updates():
    opt = obgd(learning_rate=1.0, gamma=0.5, lamda=0.5, kappa=2.0)
    _, state = opt.update(G1, opt.init(PARAMS), delta=jnp.float32(0.5))
    upd, state = opt.update(G2, state, delta=jnp.float32(3.0))
    # z2 = 0.25 * G1 + G2 = a [1.125, -0.25], b [[-0.5]]; ||z2||_1 = 1.875
    # delta_bar = 3; M = 1 * 2 * 3 * 1.875 = 11.25 -> step = 1 / 11.25
    step = 1.0 / 11.25
    close(state.step_size, step)
    # updates = step * 3 * z2 = z2 / 3.75
    tree_close(upd, {"a": [1.125 / 3.75, -0.25 / 3.75], "b": [[-0.5 / 3.75]]})
    tree_close(state.trace, {"a": [1.125, -0.25], "b": [[-0.5]]})


def test_obgd_reset_after_use():
    opt = obgd(learning_rate=1.0, gamma=0.5, lamda=0.5, kappa=2.0)
    upd, state = opt.update(G1, opt.init(PARAMS), delta=jnp.float32(0.5), reset=jnp.array(True))
    # The update still uses z = G1 (same numbers as the first-update test) ...
    tree_close(upd, {"a": [0.5 / 14, -1.0 / 14], "b": [[2.0 / 14]]})
    # ... and only then is the trace cleared (deferred: applied inside the next update's pass),
    # so the next update starts from zero.
    tree_close(trace_in_effect(state), {"a": [0.0, 0.0], "b": [[0.0]]})
    assert bool(state.reset_pending)
    upd, state = opt.update(G2, state, delta=jnp.float32(1.0))
    assert not bool(state.reset_pending)
    # z2 = 0.25 * 0 + G2 = G2, ||G2||_1 = 2; M = 1 * 2 * 1 * 2 = 4 -> step = 0.25
    close(state.step_size, 0.25)
    # updates = 0.25 * 1 * G2
    tree_close(upd, {"a": [0.25, 0.0], "b": [[-0.25]]})


def test_obgd_update_moves_prediction_towards_target_without_overshoot():
    # Linear prediction v = w . x with |x_i| <= 1, grads of the prediction = x.
    # Change of v = step * delta * ||x||_2^2 <= step * |delta| * ||x||_1 <= |delta| / kappa.
    x = jnp.array([1.0, -0.5, 0.25])
    w = {"w": jnp.zeros(3)}
    target = 10.0
    opt = obgd(learning_rate=1.0, gamma=0.0, lamda=0.0, kappa=2.0)
    delta = target - jnp.dot(w["w"], x)  # 10
    upd, _ = opt.update({"w": x}, opt.init(w), delta=delta)
    v_new = float(jnp.dot(w["w"] + upd["w"], x))
    # ||x||_1 = 1.75, delta_bar = 10, M = 1 * 2 * 10 * 1.75 = 35 -> step = 1/35
    # change = (1/35) * 10 * (1 + 0.25 + 0.0625) = 13.125 / 35 = 0.375
    close(v_new, 0.375)
    assert 0.0 < v_new < target


def test_obgd_without_trace_is_one_step_and_keeps_no_trace():
    # gamma * lambda = 0: each update uses only its own gradient (no memory of the last one).
    opt = obgd(learning_rate=0.1, gamma=0.9, lamda=0.0, kappa=2.0)
    state = opt.init(PARAMS)
    _, state = opt.update(GA1, state, delta=jnp.float32(1.0))
    upd, state = opt.update(GA2, state, delta=jnp.float32(2.0))
    # ||GA2||_1 = 2.5, M = 0.1 * 2 * 2 * 2.5 = 1 -> not > 1: step = 0.1; update = 0.2 * GA2
    tree_close(upd, {"a": [0.3, 0.0], "b": [[0.2]]})
    close(state.step_size, 0.1)
    tree_close(state.trace, {"a": [0.0, 0.0], "b": [[0.0]]})


# --------------------------------------------------------------------------- AdaptiveObGD

GA1 = {"a": jnp.array([1.0, -2.0]), "b": jnp.array([[4.0]])}
GA2 = {"a": jnp.array([1.5, 0.0]), "b": jnp.array([[1.0]])}


def test_adaptive_obgd_two_updates():
    # lr = 1, kappa = 1, gamma * lambda = 1 * 0.5, beta2 = 0.5, eps = 0
    opt = adaptive_obgd(learning_rate=1.0, gamma=1.0, lamda=0.5, kappa=1.0, beta2=0.5, eps=0.0)
    state = opt.init(PARAMS)
    upd, state = opt.update(GA1, state, delta=jnp.float32(1.0))
    # t = 1: z = GA1 = a [1, -2], b [[4]]
    # nu = 0.5 * 0 + 0.5 * (1 * z)^2 = a [0.5, 2], b [[8]]
    # bias correction 1 - 0.5^1 = 0.5 -> nu_hat = a [1, 4], b [[16]]
    # z_hat = z / sqrt(nu_hat) = a [1, -1], b [[1]]; ||z_hat||_1 = 3
    # M = 1 * 1 * max(1, 1) * 3 = 3 > 1 -> step = 1/3; updates = (1/3) * 1 * z_hat
    close(state.step_size, 1.0 / 3.0)
    tree_close(upd, {"a": [1 / 3, -1 / 3], "b": [[1 / 3]]})
    tree_close(state.nu, {"a": [0.5, 2.0], "b": [[8.0]]})
    assert int(state.count) == 1

    upd, state = opt.update(GA2, state, delta=jnp.float32(2.0))
    # t = 2: z = 0.5 * [1, -2] + [1.5, 0] = [2, -1]; b = 0.5 * 4 + 1 = 3
    # nu: a0 = 0.5 * 0.5 + 0.5 * (2 * 2)^2 = 0.25 + 8 = 8.25
    #     a1 = 0.5 * 2 + 0.5 * (2 * -1)^2 = 1 + 2 = 3
    #     b  = 0.5 * 8 + 0.5 * (2 * 3)^2 = 4 + 18 = 22
    tree_close(state.nu, {"a": [8.25, 3.0], "b": [[22.0]]})
    # correction 1 - 0.5^2 = 0.75 -> nu_hat = [11, 4], [[88/3]]
    z_hat = {"a": [2 / math.sqrt(11), -1 / 2], "b": [[3 / math.sqrt(88 / 3)]]}
    l1 = 2 / math.sqrt(11) + 0.5 + 3 / math.sqrt(88 / 3)  # ~ 1.65694
    # delta_bar = 2; M = 1 * 1 * 2 * l1 ~ 3.31 > 1 -> step = 1 / (2 * l1)
    close(state.step_size, 1 / (2 * l1))
    # updates = step * 2 * z_hat = z_hat / l1
    tree_close(upd, jax.tree.map(lambda v: v / l1, z_hat))
    assert int(state.count) == 2


def test_adaptive_obgd_bound_inactive_and_eps():
    # One leaf, g = 3, delta = 1, beta2 = 0.5, eps = 16, lr = 0.1, kappa = 1.
    opt = adaptive_obgd(learning_rate=0.1, gamma=0.9, lamda=0.9, kappa=1.0, beta2=0.5, eps=16.0)
    upd, state = opt.update(jnp.array([3.0]), opt.init(jnp.zeros(1)), delta=jnp.float32(1.0))
    # nu = 0.5 * 9 = 4.5; nu_hat = 4.5 / 0.5 = 9; z_hat = 3 / sqrt(9 + 16) = 0.6
    # M = 0.1 * 1 * 1 * 0.6 = 0.06 <= 1 -> step = 0.1; update = 0.1 * 1 * 0.6 = 0.06
    close(state.step_size, 0.1)
    close(upd, [0.06])


def test_adaptive_obgd_reset_clears_trace_only():
    opt = adaptive_obgd(learning_rate=1.0, gamma=1.0, lamda=0.5, kappa=1.0, beta2=0.5, eps=0.0)
    upd, state = opt.update(GA1, opt.init(PARAMS), delta=jnp.float32(1.0), reset=jnp.array(True))
    # Same first update as without reset (the trace is used before it is cleared).
    tree_close(upd, {"a": [1 / 3, -1 / 3], "b": [[1 / 3]]})
    tree_close(trace_in_effect(state), {"a": [0.0, 0.0], "b": [[0.0]]})  # cleared for the next update
    assert bool(state.reset_pending)
    tree_close(state.nu, {"a": [0.5, 2.0], "b": [[8.0]]})  # second moment kept
    upd, state = opt.update(
        {"a": jnp.array([1.0, 1.0]), "b": jnp.array([[1.0]])}, state, delta=jnp.float32(1.0)
    )
    # z = 0.5 * 0 + [1, 1], [[1]]
    # nu = 0.5 * [0.5, 2] + 0.5 * [1, 1] = [0.75, 1.5]; b = 0.5 * 8 + 0.5 = 4.5
    # correction 0.75 -> nu_hat = [1, 2], [[6]]
    # z_hat = [1, 1/sqrt(2)], [[1/sqrt(6)]]
    l1 = 1 + 1 / math.sqrt(2) + 1 / math.sqrt(6)  # ~ 2.1154 -> M = l1 > 1, step = 1 / l1
    close(state.step_size, 1 / l1)
    tree_close(upd, {"a": [1 / l1, 1 / math.sqrt(2) / l1], "b": [[1 / math.sqrt(6) / l1]]})


# --------------------------------------------------------------------------- sparse init


@pytest.mark.parametrize(
    "shape, sparsity, zeros",
    [
        ((20, 7), 0.9, 18),  # ceil(0.9 * 20) = 18
        ((3, 3, 4, 5), 0.9, 33),  # fan_in = 3*3*4 = 36; ceil(32.4) = 33
        ((3, 3, 4, 5), 0.5, 18),  # ceil(0.5 * 36) = 18
        ((10, 3), 0.25, 3),  # ceil(2.5) = 3
        ((6, 4), 0.0, 0),
    ],
)
def test_sparse_init_exact_zeros_per_output_column(shape, sparsity, zeros):
    w = np.asarray(sparse_init(sparsity)(jax.random.key(0), shape, jnp.float32))
    assert w.shape == shape
    cols = w.reshape(-1, shape[-1])  # [fan_in, fan_out]
    assert list((cols == 0).sum(axis=0)) == [zeros] * shape[-1]
    bound = 1 / math.sqrt(cols.shape[0])
    assert np.all(np.abs(w) <= bound)


def test_sparse_init_scale_from_fan_in_and_masks_differ_per_column():
    # Dense (4, 100), no sparsity: U(-1/2, 1/2); 400 draws reach beyond 0.4 in |w|.
    w = np.asarray(sparse_init(0.0)(jax.random.key(1), (4, 100)))
    assert np.all(np.abs(w) <= 0.5) and np.abs(w).max() > 0.4
    # Conv (3, 3, 4, 50) at 0.5: bound 1/sqrt(36) = 1/6, 900 nonzero draws reach 0.8/6.
    c = np.asarray(sparse_init(0.5)(jax.random.key(2), (3, 3, 4, 50)))
    assert np.all(np.abs(c) <= 1 / 6) and np.abs(c).max() > 0.8 / 6
    # Each output unit draws its own mask.
    masks = (c.reshape(36, 50) == 0).T
    assert len({m.tobytes() for m in masks}) > 1


def test_sparse_init_deterministic_per_key():
    init = sparse_init(0.9)
    a = np.asarray(init(jax.random.key(3), (20, 8)))
    b = np.asarray(init(jax.random.key(3), (20, 8)))
    c = np.asarray(init(jax.random.key(4), (20, 8)))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("sparsity", [-0.1, 1.0, 1.5])
def test_sparse_init_rejects_invalid_sparsity(sparsity):
    with pytest.raises(ValueError):
        sparse_init(sparsity)


# --------------------------------------------------------------------------- nets


def test_layer_norm_hand_vectors():
    # [1, 2, 3, 4]: mean 2.5, var = (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25
    close(
        layer_norm(jnp.array([1.0, 2.0, 3.0, 4.0])),
        np.array([-1.5, -0.5, 0.5, 1.5]) / math.sqrt(1.25 + 1e-5),
    )
    # [[1, 3], [5, 7]] over all axes: mean 4, var = (9 + 1 + 1 + 9) / 4 = 5
    x = jnp.array([[1.0, 3.0], [5.0, 7.0]])
    close(layer_norm(x), np.array([[-3.0, -1.0], [1.0, 3.0]]) / math.sqrt(5 + 1e-5))
    # over the last axis only: row means 2 and 6, var 1 each
    close(layer_norm(x, axes=(1,)), np.array([[-1.0, 1.0], [-1.0, 1.0]]) / math.sqrt(1 + 1e-5))
    # eps = 1e-5 matters for a tiny spread: [0, 0.002] -> mean 0.001, var 1e-6
    # out = +-0.001 / sqrt(1e-6 + 1e-5) = +-0.30151
    y = 0.001 / math.sqrt(1.1e-5)
    close(layer_norm(jnp.array([0.0, 0.002])), [-y, y], rtol=1e-4)
    # constant input: zeros, not NaN
    close(layer_norm(jnp.array([3.0, 3.0, 3.0])), [0.0, 0.0, 0.0])


def test_leaky_relu_values_and_gradients():
    close(leaky_relu(jnp.array([-2.0, 0.0, 3.0])), [-0.02, 0.0, 3.0])
    grad = jax.vmap(jax.grad(leaky_relu))(jnp.array([-2.0, 0.0, 3.0]))
    # PyTorch convention: slope 0.01 at exactly 0 (jax.nn.leaky_relu would give 1 there)
    close(grad, [0.01, 0.01, 1.0])


def test_mlp_shapes_head_and_init():
    net = MLP(hidden=(8, 6), out=3, sparsity=0.5)
    params = net.init(jax.random.key(0), jnp.zeros((2, 3)))["params"]
    assert set(params) == {"Dense_0", "Dense_1", "head"}
    assert params["Dense_0"]["kernel"].shape == (6, 8)  # input flattened: 2 * 3 = 6
    assert params["head"]["kernel"].shape == (6, 3)
    # sparse kernels: ceil(0.5 * 6) = 3 zeros per unit; zero biases
    assert list((np.asarray(params["Dense_0"]["kernel"]) == 0).sum(0)) == [3] * 8
    for layer in params.values():
        assert not np.any(np.asarray(layer["bias"]))
    out = net.apply({"params": params}, jnp.ones((2, 3)))
    assert out.shape == (3,)


def test_mlp_without_hidden_layers_is_linear_without_bias():
    # hidden=() is a linear function of the observation: on one-hot inputs, a table. A bias
    # would be shared by every state, so it has none.
    net = MLP(hidden=(), out=2, sparsity=0.0)
    params = net.init(jax.random.key(0), jnp.zeros(3))["params"]
    assert set(params) == {"head"} and set(params["head"]) == {"kernel"}
    w = np.asarray(params["head"]["kernel"])
    x = jnp.array([0.0, 1.0, 0.0])
    close(net.apply({"params": params}, x), w[1])


def test_held_cotangent_is_the_identity_both_ways():
    x = jnp.array([-1.5, -0.0, 0.0, 2.0, jnp.inf, -jnp.inf, jnp.nan])
    np.testing.assert_array_equal(held_cotangent(x), x)
    # The backward is max(g, -inf): every cotangent passes unchanged, -0, infinities and NaN too.
    _, vjp = jax.vjp(held_cotangent, x)
    (back,) = jax.jit(vjp)(x)
    np.testing.assert_array_equal(np.signbit(back), np.signbit(x))
    np.testing.assert_array_equal(back, x)


@pytest.mark.parametrize("shape", [(4,), (10, 10, 4)])
def test_held_networks_have_the_plain_gradients(shape):
    # The streaming learners' networks hold each hidden layer's cotangent (a speed measure); the
    # gradient is the plain network's (bit for bit on the fingerprint machine; tested to 1e-6).
    held = make_network(shape, out=3, hidden=(32, 16), sparsity=0.5)
    plain = held.clone(hold=False)
    assert held.hold and not plain.hold
    params = held.init(jax.random.key(0), jnp.zeros(shape))
    x = jax.random.normal(jax.random.key(1), shape)

    def grads(net):
        return jax.jit(jax.grad(lambda p: jnp.sum(jnp.tanh(net.apply(p, x)))))(params)

    for a, b in zip(jax.tree.leaves(grads(held)), jax.tree.leaves(grads(plain)), strict=True):
        assert np.any(np.asarray(b) != 0)
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_minatar_cnn_shapes_and_make_network():
    net = make_network((10, 10, 4), out=5, hidden=(32, 16), sparsity=0.9)
    assert isinstance(net, MinAtarCNN)
    params = net.init(jax.random.key(0), jnp.zeros((10, 10, 4)))["params"]
    assert set(params) == {"Conv_0", "Dense_0", "head"}
    assert params["Conv_0"]["kernel"].shape == (3, 3, 4, 16)
    # VALID 3x3 conv: 8 x 8 x 16 = 1024 features -> last hidden width 16 -> head
    assert params["Dense_0"]["kernel"].shape == (1024, 16)
    assert params["head"]["kernel"].shape == (16, 5)
    assert net.apply({"params": params}, jnp.ones((10, 10, 4))).shape == (5,)

    mlp = make_network((4,), out=2, hidden=(32, 16), sparsity=0.9)
    assert isinstance(mlp, MLP) and tuple(mlp.hidden) == (32, 16)


# --------------------------------------------------------------------------- normalisation


def test_welford_hand_sequence():
    s = welford_init()
    close(welford_var(s), 1.0)  # nothing seen: 1
    s = welford_update(s, jnp.float32(1.0))
    close(s.mean, 1.0)
    close(welford_var(s), 1.0)  # one sample: still 1
    s = welford_update(s, jnp.float32(2.0))
    # [1, 2]: mean 1.5, sample var = (0.25 + 0.25) / 1 = 0.5
    close(s.mean, 1.5)
    close(welford_var(s), 0.5)
    s = welford_update(s, jnp.float32(4.0))
    # [1, 2, 4]: mean 7/3; deviations -4/3, -1/3, 5/3; squares 16/9 + 1/9 + 25/9 = 42/9
    # sample var = (42/9) / 2 = 7/3
    close(s.mean, 7 / 3)
    close(welford_var(s), 7 / 3)
    close(s.count, 3.0)


def test_welford_vector_samples():
    s = welford_init((2,))
    for x in ([1.0, 10.0], [2.0, 20.0], [4.0, 40.0]):
        s = welford_update(s, jnp.array(x))
    # second column is 10x the first: mean 70/3, var 100 * 7/3
    close(s.mean, [7 / 3, 70 / 3])
    close(welford_var(s), [7 / 3, 700 / 3], rtol=1e-5)


def test_obs_norm_uses_stats_after_including_obs():
    st = obs_norm_init((2,))
    st, y = obs_norm_update(st, jnp.array([3.0, -1.0]))
    # mean = x, var = 1 -> 0
    close(y, [0.0, 0.0])
    st, y = obs_norm_update(st, jnp.array([5.0, 1.0]))
    # mean [4, 0]; m2 = (5-3)(5-4) = 2, (1+1)(1-0) = 2 -> var 2
    # y = [1, 1] / sqrt(2 + 1e-8)
    close(y, [1 / math.sqrt(2), 1 / math.sqrt(2)])
    st, y = obs_norm_update(st, jnp.array([1.0, 2.0]))
    # col0 [3, 5, 1]: mean 3, var (0 + 4 + 4) / 2 = 4 -> (1 - 3) / 2 = -1
    # col1 [-1, 1, 2]: mean 2/3, var ((5/3)^2 + (1/3)^2 + (4/3)^2) / 2 = (42/9) / 2 = 7/3
    #   -> (2 - 2/3) / sqrt(7/3) = (4/3) / 1.527525 = 0.872872
    close(y, [-1.0, (4 / 3) / math.sqrt(7 / 3)], rtol=1e-5)


def test_reward_scale_three_steps_with_done():
    gamma = 0.5
    st = reward_scale_init()
    st, r = reward_scale_update(st, jnp.float32(1.0), jnp.array(False), gamma)
    # trace = 0.5 * 1 * 0 + 1 = 1; one sample -> var 1; r / sqrt(1 + 1e-8) = 1
    close(st.trace, 1.0)
    close(r, 1.0)
    st, r = reward_scale_update(st, jnp.float32(2.0), jnp.array(False), gamma)
    # trace = 0.5 * 1 + 2 = 2.5; traces [1, 2.5]: mean 1.75, var 2 * 0.75^2 / 1 = 1.125
    close(st.trace, 2.5)
    close(r, 2.0 / math.sqrt(1.125))
    st, r = reward_scale_update(st, jnp.float32(4.0), jnp.array(True), gamma)
    # done: trace = 0.5 * 0 * 2.5 + 4 = 4; traces [1, 2.5, 4]: mean 2.5, var (2.25+0+2.25)/2 = 2.25
    # r = 4 / 1.5 = 8/3 (sign of reward kept, never centred)
    close(st.trace, 4.0)
    close(r, 8 / 3)
    st, r = reward_scale_update(st, jnp.float32(-1.0), jnp.array(False), gamma)
    # trace = 0.5 * 4 - 1 = 1; traces [1, 2.5, 4, 1]: mean 2.125,
    # m2 = 1.125^2 + 0.375^2 + 1.875^2 + 1.125^2
    #    = 1.265625 + 0.140625 + 3.515625 + 1.265625 = 6.1875
    # var = 6.1875 / 3 = 2.0625 -> r = -1 / sqrt(2.0625)
    close(r, -1 / math.sqrt(2.0625))
