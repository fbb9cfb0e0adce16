"""Tests for unlearn_jax.masking: element-wise masked optax updates, reset and mask helpers."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from unlearn_jax import masking


def _params(seed=0):
  rng = np.random.default_rng(seed)
  f = lambda *s: jnp.asarray(rng.normal(size=s), jnp.float32)
  return {
    "dense1": {"kernel": f(4, 5), "bias": f(5)},
    "classifier": {"kernel": f(5, 3), "bias": f(3)},
  }


def _bool_mask(params, seed=1, p=0.4):
  rng = np.random.default_rng(seed)
  return jax.tree_util.tree_map(lambda x: jnp.asarray(rng.random(x.shape) < p), params)


def _run(opt, params, steps=20, seed=2):
  rng = np.random.default_rng(seed)
  state = opt.init(params)

  @jax.jit
  def step(params, state, grads):
    updates, state = opt.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  for _ in range(steps):
    grads = jax.tree_util.tree_map(lambda x: jnp.asarray(rng.normal(size=x.shape), x.dtype), params)
    params, state = step(params, state, grads)
  return params


def _assert_frozen_exact(before, after, mask):
  for b, a, m in zip(*(jax.tree_util.tree_leaves(t) for t in (before, after, mask))):
    b, a, m = np.asarray(b), np.asarray(a), np.asarray(m, bool)
    assert np.array_equal(a[~m], b[~m])  # bit-identical (same float32 values)
    assert np.all(a[m] != b[m])  # every trainable element moved


def test_masked_last_in_chain_keeps_frozen_bit_identical():
  params, mask = _params(), _bool_mask(_params())
  opt = optax.chain(
    optax.add_decayed_weights(5e-4), optax.sgd(0.1, momentum=0.9), masking.masked_updates(mask)
  )
  _assert_frozen_exact(params, _run(opt, params), mask)


def test_masked_convenience_and_nested_chain():
  params, mask = _params(), _bool_mask(_params())
  inner = optax.chain(optax.add_decayed_weights(5e-4), optax.sgd(0.1, momentum=0.9))
  out1 = _run(masking.masked(inner, mask), params)
  out2 = _run(optax.chain(inner, optax.chain(masking.masked_updates(mask))), params)
  _assert_frozen_exact(params, out1, mask)
  for a, b in zip(jax.tree_util.tree_leaves(out1), jax.tree_util.tree_leaves(out2)):
    assert np.array_equal(a, b)


def test_mask_first_in_chain_masks_gradient():
  # Without decay after it, masking the gradient first also freezes (momentum of zeros is zero).
  params, mask = _params(), _bool_mask(_params())
  opt = optax.chain(masking.masked_updates(mask), optax.sgd(0.1, momentum=0.9))
  _assert_frozen_exact(params, _run(opt, params), mask)


def test_float_mask_scales_and_nan_does_not_leak():
  u = {"w": jnp.array([1.0, 2.0, jnp.nan, 4.0]), "b": jnp.array([jnp.inf, 3.0])}
  fmask = {"w": jnp.array([1.0, 0.5, 0.0, 0.0]), "b": jnp.array([0.0, 0.25])}
  bmask = {"w": jnp.array([True, True, False, False]), "b": jnp.array([False, True])}

  t = masking.masked_updates(fmask)
  out, _ = t.update(u, t.init(u))
  np.testing.assert_array_equal(out["w"], [1.0, 1.0, 0.0, 0.0])
  np.testing.assert_array_equal(out["b"], [0.0, 0.75])

  t = masking.masked_updates(bmask)
  out, _ = jax.jit(t.update)(u, t.init(u))
  np.testing.assert_array_equal(out["w"], [1.0, 2.0, 0.0, 0.0])
  np.testing.assert_array_equal(out["b"], [0.0, 3.0])


def test_state_is_empty_namedtuple():
  params = _params()
  state = masking.masked_updates(masking.full_mask(params)).init(params)
  assert isinstance(state, masking.MaskedUpdatesState) and len(state) == 0


def test_structure_and_shape_mismatch_raise():
  params = _params()
  mask = masking.full_mask(params)
  del mask["classifier"]
  with pytest.raises(ValueError, match="structure"):
    masking.masked_updates(mask).init(params)
  mask = masking.full_mask(params)
  mask["dense1"]["kernel"] = jnp.ones((5, 4), bool)
  with pytest.raises(ValueError, match="dense1/kernel"):
    masking.masked_updates(mask).init(params)


def test_vmap_over_models_with_shared_mask():
  params = [_params(s) for s in range(3)]
  stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *params)
  mask = _bool_mask(params[0])
  opt = masking.masked(optax.sgd(0.1, momentum=0.9), mask)
  state = jax.jit(jax.vmap(opt.init))(stacked)
  grads = jax.tree_util.tree_map(jnp.ones_like, stacked)
  updates, _ = jax.jit(jax.vmap(opt.update))(grads, state, stacked)
  for u, m in zip(jax.tree_util.tree_leaves(updates), jax.tree_util.tree_leaves(mask)):
    np.testing.assert_array_equal(
      u, np.broadcast_to(np.where(m, np.float32(-0.1), np.float32(0.0)), u.shape)
    )


def test_reset_by_hand():
  params = {"w": jnp.array([1.0, 2.0, 3.0]), "b": jnp.array([[4.0, 5.0]])}
  fresh = {"w": jnp.array([10.0, 20.0, 30.0]), "b": jnp.array([[40.0, 50.0]])}
  out = masking.reset(
    params, fresh, {"w": jnp.array([True, False, True]), "b": jnp.array([[False, True]])}
  )
  np.testing.assert_array_equal(out["w"], [10.0, 2.0, 30.0])
  np.testing.assert_array_equal(out["b"], [[4.0, 50.0]])
  out = masking.reset(
    params, fresh, {"w": jnp.array([0.0, 0.5, 1.0]), "b": jnp.array([[0.25, 0.0]])}
  )
  np.testing.assert_allclose(out["w"], [1.0, 11.0, 30.0])
  np.testing.assert_allclose(out["b"], [[13.0, 5.0]])
  assert out["w"].dtype == jnp.float32


def test_counts_fraction_summary():
  mask = {
    "a": {"kernel": jnp.array([[True, False], [True, True]]), "bias": jnp.array([False, False])},
    "z": jnp.array([1.0, 0.0, 0.5, 0.0]),
  }
  assert masking.mask_count(mask) == 5
  assert masking.mask_fraction(mask) == pytest.approx(5 / 10)
  assert masking.layer_summary(mask) == [
    dict(path="a/bias", selected=0, size=2, fraction=0.0),
    dict(path="a/kernel", selected=3, size=4, fraction=0.75),
    dict(path="z", selected=2, size=4, fraction=0.5),
  ]


def test_union_intersection_full_mask():
  a = {"w": jnp.array([True, True, False, False])}
  b = {"w": jnp.array([True, False, True, False])}
  np.testing.assert_array_equal(masking.mask_union(a, b)["w"], [True, True, True, False])
  np.testing.assert_array_equal(masking.mask_intersection(a, b)["w"], [True, False, False, False])
  assert masking.mask_union(a, b)["w"].dtype == jnp.bool_
  f = {"w": jnp.array([0.5, 0.0, 0.25, 1.0])}
  np.testing.assert_array_equal(masking.mask_union(a, f)["w"], [1.0, 1.0, 0.25, 1.0])
  np.testing.assert_array_equal(masking.mask_intersection(a, f)["w"], [0.5, 0.0, 0.0, 0.0])
  full = masking.full_mask(_params(), False)
  assert masking.mask_count(full) == 0 and jax.tree_util.tree_leaves(full)[0].dtype == jnp.bool_
  assert jax.tree_util.tree_leaves(masking.full_mask(_params(), 1.0))[0].dtype == jnp.float32
  with pytest.raises(ValueError):
    masking.mask_union(a, {"v": a["w"]})


def test_always_trainable():
  params = dict(_params(), classifier_2={"kernel": jnp.zeros((3, 2))})
  mask = masking.full_mask(params, False)
  out = masking.always_trainable(mask, masking.path_contains("classifier"))
  assert [r["fraction"] for r in masking.layer_summary(out)] == [1.0, 1.0, 0.0, 0.0, 0.0]
  assert [r["path"] for r in masking.layer_summary(out)][:3] == [
    "classifier/bias",
    "classifier/kernel",
    "classifier_2/kernel",
  ]
  out = masking.always_trainable(mask, lambda path: "classifier" in path)  # substring
  assert masking.mask_count(out) == 5 * 3 + 3 + 3 * 2
  fmask = masking.full_mask(params, 0.0)
  out = masking.always_trainable(fmask, lambda path: path == "dense1/bias")
  assert out["dense1"]["bias"].dtype == jnp.float32 and masking.mask_count(out) == 5


def test_mask_in_state_per_model_masks_under_vmap():
  """Each model of a stacked state keeps its own mask; masked-out entries stay bit-identical."""
  from unlearn_jax.masking import masked_updates_from_state, set_mask

  params = {"w": jnp.arange(6.0).reshape(2, 3) + 1.0}
  masks = {
    "w": jnp.array(
      [[[True, False, False], [False, False, True]], [[False, True, False], [True, False, False]]]
    )
  }
  stacked = jax.tree_util.tree_map(lambda a: jnp.stack([a, a]), params)
  tx = optax.chain(
    optax.add_decayed_weights(0.01), optax.sgd(0.1, momentum=0.9), masked_updates_from_state()
  )
  opt = jax.vmap(lambda p, m: set_mask(tx.init(p), m))(stacked, masks)

  @jax.jit
  def step(p, o, g):
    u, o = jax.vmap(tx.update)(g, o, p)
    return optax.apply_updates(p, u), o

  p, o = stacked, opt
  for i in range(10):
    g = {"w": jax.random.normal(jax.random.PRNGKey(i), (2, 2, 3))}
    p, o = step(p, o, g)
  for m in range(2):
    frozen = ~np.asarray(masks["w"][m])
    np.testing.assert_array_equal(
      np.asarray(p["w"][m])[frozen], np.asarray(stacked["w"][m])[frozen]
    )
    assert np.all(np.asarray(p["w"][m])[~frozen] != np.asarray(stacked["w"][m])[~frozen])


def test_set_mask_needs_the_component():
  from unlearn_jax.masking import set_mask

  params = {"w": jnp.ones(3)}
  with pytest.raises(ValueError, match="no masked_updates_from_state"):
    set_mask(optax.sgd(0.1).init(params), {"w": jnp.ones(3, bool)})
