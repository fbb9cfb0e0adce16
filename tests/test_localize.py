"""Tests for unlearn_jax.localize against hand-computed and hand-looped references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from unlearn_jax import localize


def _params(seed=0):
  rng = np.random.default_rng(seed)
  f = lambda *s: jnp.asarray(rng.normal(size=s), jnp.float32)
  return {
    "dense1": {"kernel": f(4, 6), "bias": f(6)},
    "classifier": {"kernel": f(6, 3), "bias": f(3)},
  }


def loss_fn(params, batch):
  """Mean cross-entropy of a 2-layer tanh MLP written with plain jnp."""
  x, y = batch
  h = jnp.tanh(x @ params["dense1"]["kernel"] + params["dense1"]["bias"])
  logits = h @ params["classifier"]["kernel"] + params["classifier"]["bias"]
  logp = jax.nn.log_softmax(logits)
  return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def _data(n=10, seed=3):
  rng = np.random.default_rng(seed)
  return rng.normal(size=(n, 4)).astype(np.float32), rng.integers(0, 3, size=n)


def _numpy_grad(params, x, y):
  """Hand-written backprop of `loss_fn` in float64 numpy (independent of jax.grad)."""
  w1, b1 = (np.asarray(params["dense1"][k], np.float64) for k in ("kernel", "bias"))
  w2, b2 = (np.asarray(params["classifier"][k], np.float64) for k in ("kernel", "bias"))
  x = np.asarray(x, np.float64)
  h = np.tanh(x @ w1 + b1)
  z = h @ w2 + b2
  p = np.exp(z - z.max(axis=1, keepdims=True))
  p /= p.sum(axis=1, keepdims=True)
  dz = (p - np.eye(w2.shape[1])[y]) / len(x)
  dpre = (dz @ w2.T) * (1 - h**2)
  return {
    "dense1": {"kernel": x.T @ dpre, "bias": dpre.sum(0)},
    "classifier": {"kernel": h.T @ dz, "bias": dz.sum(0)},
  }


def _reference_grad_sum(params, x, y, slices):
  total = None
  for lo, hi in slices:  # one gradient per batch, summed by hand
    g = _numpy_grad(params, x[lo:hi], y[lo:hi])
    total = g if total is None else jax.tree_util.tree_map(np.add, total, g)
  return total


def _allclose(a, b, **kw):
  for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    np.testing.assert_allclose(u, v, **kw)


def test_grad_and_weighted_grad_match_hand_loop_every_example_used():
  params, (x, y) = _params(), _data(10)
  ref = _reference_grad_sum(params, x, y, [(0, 4), (4, 8), (8, 10)])  # 4 does not divide 10
  s = localize.criticality_scores(loss_fn, params, x, y, "grad", batch_size=4)
  _allclose(s, jax.tree_util.tree_map(np.abs, ref), rtol=1e-5, atol=1e-7)
  s = localize.criticality_scores(loss_fn, params, x, y, "weighted_grad", batch_size=4)
  _allclose(
    s,
    jax.tree_util.tree_map(lambda p, g: np.abs(np.asarray(p) * g), params, ref),
    rtol=1e-5,
    atol=1e-7,
  )
  assert all(l.dtype == jnp.float32 for l in jax.tree_util.tree_leaves(s))
  dropped = _reference_grad_sum(params, x, y, [(0, 4), (4, 8)])  # what dropping the tail gives
  assert not np.allclose(
    s["classifier"]["kernel"],
    jnp.abs(params["classifier"]["kernel"] * dropped["classifier"]["kernel"]),
  )
  # the abs is taken after the sum: the alias for the training-set ablation computes the same thing
  s_all = localize.criticality_scores(loss_fn, params, x, y, "weighted_grad_all", batch_size=4)
  _allclose(s, s_all, rtol=0, atol=0)


def test_batch_gradient_sum_iterable_and_no_recompile():
  params, (x, y) = _params(), _data(10)
  batches = [(x[:4], y[:4]), (x[4:8], y[4:8]), (x[8:], y[8:])]
  _allclose(
    localize.batch_gradient_sum(loss_fn, params, batches),
    _reference_grad_sum(params, x, y, [(0, 4), (4, 8), (8, 10)]),
    rtol=1e-5,
    atol=1e-7,
  )
  size = localize._accumulate_grad._cache_size()
  localize.criticality_scores(loss_fn, params, x, y, "grad", batch_size=4)
  assert localize._accumulate_grad._cache_size() == size  # full + partial batch already compiled


def test_weight_criterion_and_errors():
  params = _params()
  s = localize.criticality_scores(loss_fn, params, None, None, "weight")
  _allclose(s, jax.tree_util.tree_map(jnp.abs, params), rtol=0, atol=0)
  with pytest.raises(ValueError, match="grad, weighted_grad, weighted_grad_all, weight"):
    localize.criticality_scores(loss_fn, params, *_data(), criterion="hessian")
  with pytest.raises(ValueError, match="empty"):
    localize.criticality_scores(loss_fn, params, *_data(0), criterion="grad")


# Conv score tensor [kh=2, kw=2, C_in=1, C_out=3], written per (kh, kw) position.
CONV = np.array([[1, 8, 0], [4, 2, 6], [3, 7, 5], [2, 9, 1]], np.float32).reshape(2, 2, 1, 3)
# Channel entries: c0 = {1,4,3,2}, c1 = {8,2,7,9}, c2 = {0,6,5,1}.
DENSE = np.array([[0.5, 2.0], [1.5, 0.0], [3.0, 1.0], [2.5, 4.0]], np.float32)
# Channel entries: c0 = {0.5,1.5,3,2.5}, c1 = {2,0,1,4}.
BIAS = np.array([3.0, -1.0, 2.0], np.float32)


@pytest.mark.parametrize(
  "top_h, conv_ch, dense_ch",
  [
    ("ten_percent_of_channels", [4, 9, 6], [3.0, 4.0]),  # floor(0.1*C_out)=0 -> clipped to 1: max
    ("all", [2.5, 6.5, 3.0], [1.875, 1.75]),  # plain mean of the 4 entries
    (0.5, [3.5, 8.5, 5.5], [2.75, 3.0]),  # h = floor(0.5*4) = 2: mean of the top 2
    (0.1, [4, 9, 6], [3.0, 4.0]),  # h = max(1, floor(0.4)) = 1
  ],
)
def test_aggregate_channels_by_hand(top_h, conv_ch, dense_ch):
  out = localize.aggregate_channels({"conv": CONV, "dense": DENSE, "bias": BIAS}, top_h)
  np.testing.assert_allclose(out["conv"], np.broadcast_to(np.float32(conv_ch), CONV.shape))
  np.testing.assert_allclose(out["dense"], np.broadcast_to(np.float32(dense_ch), DENSE.shape))
  np.testing.assert_array_equal(out["bias"], BIAS)  # ndim < 2 keeps element scores


def test_channel_h_rule_and_clipping():
  h = localize.channel_top_h
  assert h("ten_percent_of_channels", 64, 576) == 6  # official ResNet example
  assert h("ten_percent_of_channels", 10, 512) == 1  # 10-way classifier: max
  assert h("ten_percent_of_channels", 3, 4) == 1  # 0 clipped up to 1
  assert h("ten_percent_of_channels", 50, 3) == 3  # 5 clipped down to the row length
  assert h("all", 64, 576) == 576
  assert h(0.25, 64, 10) == 2 and h(1.0, 64, 10) == 10
  for bad in ("max", 0.0, 1.5, 2):
    with pytest.raises(ValueError, match="top_h"):
      h(bad, 10, 10)
  # C_out = 20 -> h = 2 on rows of length 3; C_out = 50 -> h = 5 clipped to 3 (plain mean).
  rng = np.random.default_rng(0)
  s20, s50 = rng.random((3, 20)).astype(np.float32), rng.random((3, 50)).astype(np.float32)
  out = localize.aggregate_channels({"a": s20, "b": s50})
  top2 = np.sort(s20, axis=0)[-2:].mean(axis=0)
  np.testing.assert_allclose(out["a"], np.broadcast_to(top2, s20.shape), rtol=1e-6)
  np.testing.assert_allclose(out["b"], np.broadcast_to(s50.mean(axis=0), s50.shape), rtol=1e-6)


def test_global_top_fraction_by_hand_and_ties():
  scores = {"a": jnp.array([3.0, 1.0, 4.0]), "b": jnp.array([[1.0, 5.0], [9.0, 2.0]])}
  m = localize.global_top_fraction_mask(scores, 0.5)  # P = 7 -> floor(3.5) = 3: 9, 5, 4
  np.testing.assert_array_equal(m["a"], [False, False, True])
  np.testing.assert_array_equal(m["b"], [[False, True], [True, False]])
  # Boundary tie: 3 and 2 first, then the three 1s tie -> lowest flat index (a[1]).
  scores = {"a": jnp.array([2.0, 1.0, 1.0]), "b": jnp.array([[1.0, 3.0], [0.0, -0.0]])}
  m = localize.global_top_fraction_mask(scores, 0.5)
  np.testing.assert_array_equal(m["a"], [True, True, False])
  np.testing.assert_array_equal(m["b"], [[False, True], [False, False]])
  # All equal: same mask twice, the lowest flat indices (leaf order a, b; C-order inside).
  eq = {"a": jnp.zeros(3), "b": jnp.zeros((2, 2))}
  m1, m2 = (localize.global_top_fraction_mask(eq, 5 / 7 + 1e-9) for _ in range(2))
  for m in (m1, m2):
    np.testing.assert_array_equal(m["a"], [True, True, True])
    np.testing.assert_array_equal(m["b"], [[True, True], [False, False]])
  assert m1["b"].dtype == jnp.bool_


def test_exact_budget_count_and_alpha_errors():
  rng = np.random.default_rng(0)
  scores = {"x": rng.random((10, 9)), "y": rng.random(13)}  # P = 103
  for alpha in (0.001, 0.01, 0.2, 0.29, 0.3, 0.5, 0.999, 1.0):
    m = localize.global_top_fraction_mask(scores, alpha)
    count = int(sum(np.sum(l) for l in jax.tree_util.tree_leaves(m)))
    assert count == localize.budget_count(alpha, 103)
    assert count == int(np.floor(round(alpha * 103, 9)))
  assert localize.budget_count(0.29, 100) == 29  # naive floor(0.29 * 100) gives 28
  assert not any(
    np.any(l) for l in jax.tree_util.tree_leaves(localize.global_top_fraction_mask(scores, 0.005))
  )  # floor(0.515) = 0: all False
  for bad in (0, 0.0, -0.1, 1.5, float("nan"), "0.3"):
    with pytest.raises(ValueError, match=r"budget alpha must be in \(0, 1\], got"):
      localize.global_top_fraction_mask(scores, bad)


def test_salun_mask_end_to_end():
  params, (x, y) = _params(1), _data(10, seed=4)
  alpha = 0.3
  m = localize.salun_mask(loss_fn, params, x, y, alpha, batch_size=4)
  # Independent reference: hand-looped gradient sum, numpy ranking (stable on -score).
  g = _reference_grad_sum(params, x, y, [(0, 4), (4, 8), (8, 10)])
  flat = np.concatenate([np.abs(np.asarray(l)).ravel() for l in jax.tree_util.tree_leaves(g)])
  k = int(np.floor(alpha * flat.size))  # P = 24 + 6 + 18 + 3 = 51 -> 15
  ref = np.zeros(flat.size, bool)
  ref[np.argsort(-flat, kind="stable")[:k]] = True
  got = np.concatenate([np.asarray(l).ravel() for l in jax.tree_util.tree_leaves(m)])
  np.testing.assert_array_equal(got, ref)
  assert got.sum() == 15


def test_localization_mask_channel_pipeline():
  params, (x, y) = _params(), _data(10)
  m = localize.localization_mask(loss_fn, params, x, y, alpha=0.3, batch_size=4)
  s = localize.criticality_scores(loss_fn, params, x, y, "weighted_grad", 4)
  ref = localize.global_top_fraction_mask(localize.aggregate_channels(s), 0.3)
  for a, b in zip(jax.tree_util.tree_leaves(m), jax.tree_util.tree_leaves(ref)):
    np.testing.assert_array_equal(a, b)
  with pytest.raises(ValueError, match="granularity"):
    localize.localization_mask(loss_fn, params, x, y, granularity="layer")


def test_channel_rule_for_attention_and_embeddings_on_the_vit_tree():
  """`10-del.md` §2: q/k/v kernels [in, heads, head_dim] have heads·head_dim output channels,
  the output projection [heads, head_dim, out] its last axis, attention biases [heads, head_dim]
  stay element-wise, cls_token / pos_embed follow view(shape[0], -1)."""
  from unlearn_jax.masking import keypath_str
  from unlearn_jax.models import build_model, init_model
  model = build_model("vit", 10, patch_size=4, dim=8, depth=1, heads=2, mlp_ratio=2.0)
  params, _ = init_model(model, jax.random.PRNGKey(0), (8, 8, 1))
  layouts = {keypath_str(p): localize.channel_layout(p, l.shape)
             for p, l in jax.tree_util.tree_flatten_with_path(params)[0]}
  att = "block0/attention"
  for name in ("query", "key", "value"):
    assert layouts[f"{att}/{name}/kernel"] == ("trailing", 2)
    assert layouts[f"{att}/{name}/bias"] == ("elementwise", 0)
  assert layouts[f"{att}/out/kernel"] == ("trailing", 1)
  assert layouts["cls_token"] == ("leading", 1) and layouts["pos_embed"] == ("leading", 1)
  assert layouts["patch_embed/kernel"] == ("trailing", 1)
  assert layouts["classifier/kernel"] == ("trailing", 1)
  assert layouts["block0/ln0/scale"] == ("elementwise", 0)

  # A query kernel [in=3, heads=2, head_dim=2] by hand: channel (h, d) = column [:, h, d].
  q = np.arange(12, dtype=np.float32).reshape(3, 2, 2) % 5  # [[0,1],[2,3]],[[4,0],[1,2]],...
  qb = np.array([[7.0, 1.0], [2.0, 9.0]], np.float32)
  emb = np.array([[[1.0, 5.0], [3.0, 2.0]]], np.float32)  # [1, tokens=2, dim=2]
  tree = {"attention": {"query": {"kernel": q, "bias": qb}}, "pos_embed": emb}
  out = localize.aggregate_channels(tree, "all")
  np.testing.assert_allclose(out["attention"]["query"]["kernel"],
                             np.broadcast_to(q.mean(axis=0), q.shape), rtol=1e-6)
  np.testing.assert_array_equal(out["attention"]["query"]["bias"], qb)
  np.testing.assert_allclose(out["pos_embed"], np.full(emb.shape, emb.mean()), rtol=1e-6)
  out = localize.aggregate_channels(tree, "ten_percent_of_channels")  # h = 1: the max
  np.testing.assert_allclose(out["attention"]["query"]["kernel"],
                             np.broadcast_to(q.max(axis=0), q.shape))
  np.testing.assert_allclose(out["pos_embed"], np.full(emb.shape, 5.0))
  # the old rule (last axis only) would give head_dim = 2 channels of 6 entries each
  assert not np.allclose(out["attention"]["query"]["kernel"],
                         np.broadcast_to(q.reshape(-1, 2).max(axis=0), q.shape))
