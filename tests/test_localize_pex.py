"""Per-example localization and the baseline strategies of `10-del.md` §1-3, §5."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from unlearn_jax import localize, masking, pex
from unlearn_jax.models import build_model, init_model

from test_localize import _data, _params, loss_fn  # the 2-layer tanh MLP with a numpy backprop


def one_loss(params, example):
  x, y = example
  return loss_fn(params, (x[None], y[None]))


@pytest.mark.parametrize("criterion", ["grad", "weighted_grad"])
def test_sum_then_abs_equals_batch_score_and_abs_then_sum_by_hand(criterion):
  params, (x, y) = _params(), _data(12)
  batch = localize.criticality_scores(loss_fn, params, x, y, criterion, batch_size=4)
  per = localize.per_example_scores(one_loss, params, (jnp.asarray(x), jnp.asarray(y)),
                                    criterion, "sum_then_abs", chunk_size=5)
  # Σ_B mean_B = Σ_i g_i / 4 with three full batches of 4: exactly a factor 4
  for a, b in zip(jax.tree_util.tree_leaves(per), jax.tree_util.tree_leaves(batch)):
    np.testing.assert_allclose(a, 4 * np.asarray(b), rtol=1e-5, atol=1e-6)
  ats = localize.per_example_scores(one_loss, params, (jnp.asarray(x), jnp.asarray(y)),
                                    criterion, "abs_then_sum", chunk_size=5)
  ref = None
  for i in range(12):  # Σ_i |θ ⊙ g_i| by hand
    g = jax.grad(one_loss)(params, (x[i], y[i]))
    s = jax.tree_util.tree_map(lambda p, gi: np.abs((np.asarray(p) if criterion != "grad"
                                                     else 1.0) * np.asarray(gi)), params, g)
    ref = s if ref is None else jax.tree_util.tree_map(np.add, ref, s)
  for a, b in zip(jax.tree_util.tree_leaves(ats), jax.tree_util.tree_leaves(ref)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  # abs_then_sum >= sum_then_abs element-wise (triangle inequality), strictly somewhere
  diff = [np.asarray(a) - np.asarray(b) for a, b in zip(jax.tree_util.tree_leaves(ats),
                                                        jax.tree_util.tree_leaves(per))]
  assert min(d.min() for d in diff) >= -1e-6 and max(d.max() for d in diff) > 1e-3
  with pytest.raises(ValueError, match="aggregation"):
    localize.per_example_scores(one_loss, params, (x, y), criterion, "max")


def test_conv_dense_attention_channels_and_global_top_alpha_by_hand():
  conv = np.zeros((2, 1, 1, 3), np.float32)  # [kh, kw, C_in, C_out]: channel c = [:, :, :, c]
  conv[:, 0, 0, 0] = [1, 9]
  conv[:, 0, 0, 1] = [4, 4]
  conv[:, 0, 0, 2] = [0, 2]
  dense = np.array([[3, 0], [1, 8]], np.float32)  # [in, out]: channels are columns
  q = np.array([[[1, 2], [3, 4]], [[5, 0], [0, 6]]], np.float32)  # [in=2, heads=2, head_dim=2]
  emb = np.array([[1, 2], [7, 0], [3, 3]], np.float32)  # [vocab=3, dim]: a row per entry
  tree = {"conv": {"kernel": conv, "bias": np.array([5, 0, 1], np.float32)},
          "dense": {"kernel": dense}, "att": {"query": {"kernel": q}}, "embedding": emb}
  mean = localize.aggregate_channels(tree, "all")
  np.testing.assert_allclose(mean["conv"]["kernel"][:, 0, 0], [[5, 4, 1]] * 2)
  np.testing.assert_allclose(mean["dense"]["kernel"], [[2, 4], [2, 4]])
  np.testing.assert_allclose(mean["att"]["query"]["kernel"], [[[3, 1], [1.5, 5]]] * 2)
  np.testing.assert_allclose(mean["embedding"], [[1.5] * 2, [3.5] * 2, [3] * 2])
  np.testing.assert_array_equal(mean["conv"]["bias"], [5, 0, 1])
  mx = localize.aggregate_channels(tree, 1.0 / 2)  # h = half the row = 1: the max
  np.testing.assert_allclose(mx["conv"]["kernel"][:, 0, 0], [[9, 4, 2]] * 2)
  np.testing.assert_allclose(mx["att"]["query"]["kernel"], [[[5, 2], [3, 6]]] * 2)
  # global top-α over the whole tree: P = 6 + 3 + 4 + 8 + 6 = 27, floor(0.3·27) = 8 elements
  m = localize.global_top_fraction_mask(mean, 0.3)
  assert masking.mask_count(m) == 8
  # the 8 largest aggregated scores: five 5s (q channel (1,1) x2, conv channel 0 x2, conv bias
  # 0), then three of the four 4s (conv channel 1 x2, dense column 1 x2): ties go to the lower
  # flat index, leaves in tree order att, conv/bias, conv/kernel, dense, embedding, so conv's
  # two and the first entry of dense column 1
  np.testing.assert_array_equal(m["att"]["query"]["kernel"][:, 1, 1], [True, True])
  assert m["att"]["query"]["kernel"].sum() == 2
  np.testing.assert_array_equal(m["conv"]["bias"], [True, False, False])
  np.testing.assert_array_equal(m["conv"]["kernel"][:, 0, 0], [[True, True, False]] * 2)
  np.testing.assert_array_equal(m["dense"]["kernel"], [[False, True], [False, False]])
  assert not m["embedding"].any()
  assert all(np.array_equal(u, v) for u, v in zip(  # same inputs, same mask
      jax.tree_util.tree_leaves(m), jax.tree_util.tree_leaves(
          localize.global_top_fraction_mask(localize.aggregate_channels(tree, "all"), 0.3))))


def test_random_strategies_hit_the_budget_exactly_and_are_deterministic():
  model = build_model("cnn", 10, width=0.25, norm="batch")
  params, _ = init_model(model, jax.random.PRNGKey(0), (8, 8, 1))
  p = sum(int(np.size(l)) for l in jax.tree_util.tree_leaves(params))
  for gran in ("param", "channel"):
    for alpha in (0.05, 0.29, 1.0):
      m = localize.random_mask(params, alpha, jax.random.PRNGKey(1), gran)
      assert masking.mask_count(m) == localize.budget_count(alpha, p)
    a = localize.random_mask(params, 0.3, jax.random.PRNGKey(1), gran)
    b = localize.random_mask(params, 0.3, jax.random.PRNGKey(1), gran)
    c = localize.random_mask(params, 0.3, jax.random.PRNGKey(2), gran)
    assert all(np.array_equal(u, v) for u, v in zip(jax.tree_util.tree_leaves(a),
                                                    jax.tree_util.tree_leaves(b)))
    assert not all(np.array_equal(u, v) for u, v in zip(jax.tree_util.tree_leaves(a),
                                                        jax.tree_util.tree_leaves(c)))
  # channel granularity, per layer (the spec): every leaf holds floor(α·n) or one more of its n
  # elements, as whole output channels of each kernel but at most one (its quota's edge)
  m = localize.random_mask(params, 0.3, jax.random.PRNGKey(1), "channel")
  for path, leaf in jax.tree_util.tree_flatten_with_path(m)[0]:
    n, got = int(np.size(leaf)), int(np.sum(leaf))
    assert int(np.floor(0.3 * n)) <= got <= int(np.floor(0.3 * n)) + 1, (path, got, n)
    if masking.keypath_str(path).endswith("kernel"):
      cols = np.asarray(leaf).reshape(-1, leaf.shape[-1])
      assert sum(0 < c.sum() < len(c) for c in cols.T) <= 1
  # the channels of a layer are a random draw: two keys pick different channels of one kernel
  m2 = localize.random_mask(params, 0.3, jax.random.PRNGKey(2), "channel")
  kernels = [(a, b) for (pa, a), b in zip(jax.tree_util.tree_flatten_with_path(m)[0],
                                          jax.tree_util.tree_leaves(m2))
             if masking.keypath_str(pa).endswith("kernel")]
  assert any(not np.array_equal(a, b) for a, b in kernels)
  # per_layer=False: channels drawn over all layers at once, so the layers' fractions vary
  g = localize.random_mask(params, 0.3, jax.random.PRNGKey(1), "channel", per_layer=False)
  assert masking.mask_count(g) == localize.budget_count(0.3, p)
  fracs = [float(np.mean(l)) for l in jax.tree_util.tree_leaves(g) if np.size(l) > 64]
  assert max(fracs) - min(fracs) > 0.05


def test_forward_order_and_shallowest_deepest_whole_layers():
  model = build_model("mlp", 4, width=1 / 32, norm="batch")  # dense0 [3, 8], dense1 [8, 8]
  params, ms = init_model(model, jax.random.PRNGKey(0), (3, 1, 1))
  order = localize.forward_order(
      lambda p: model.apply(p, ms, jnp.zeros((1, 3, 1, 1)), False)[0], params)
  assert order == ["dense0/kernel", "dense0/bias", "norm0/BatchNorm_0/scale",
                   "norm0/BatchNorm_0/bias", "dense1/kernel", "dense1/bias",
                   "norm1/BatchNorm_0/scale", "norm1/BatchNorm_0/bias", "classifier/kernel",
                   "classifier/bias"]
  p = sum(int(np.size(l)) for l in jax.tree_util.tree_leaves(params))  # 32+16+72+16+36 = 172
  assert p == 172
  # α = 0.3: 51 = dense0 (24 + 8) + norm0 (16) + 3 entries of dense1's kernel channel 0
  sh = localize.layer_depth_mask(params, 0.3, order, "shallowest")
  assert masking.mask_count(sh) == 51
  assert sh["dense0"]["kernel"].all() and sh["norm0"]["BatchNorm_0"]["scale"].all()
  np.testing.assert_array_equal(np.flatnonzero(np.asarray(sh["dense1"]["kernel"]).T.ravel()),
                                [0, 1, 2])  # the first entries of output channel 0
  assert not sh["classifier"]["kernel"].any()
  de = localize.layer_depth_mask(params, 0.3, order, "deepest")
  assert masking.mask_count(de) == 51
  assert de["classifier"]["kernel"].all() and de["classifier"]["bias"].all()  # 32 + 4 = 36
  assert de["norm1"]["BatchNorm_0"]["scale"].sum() == 8 and de["norm1"]["BatchNorm_0"][
      "bias"].sum() == 7  # the layer norm1 straddles the budget (15 more elements)
  assert not de["dense0"]["kernel"].any()
  with pytest.raises(ValueError, match="side"):
    localize.layer_depth_mask(params, 0.3, order, "middle")


def test_critmem_zeroes_the_unit_that_carries_an_example():
  # h = relu(x @ W1 + b1), logits = h @ W2 + b2; unit 0 alone carries class 0
  params = {"dense0": {"kernel": jnp.eye(2), "bias": jnp.zeros(2)},
            "classifier": {"kernel": jnp.array([[5.0, 0.0], [0.0, 1.0]]),
                           "bias": jnp.array([0.0, 0.1])}}

  def logits_fn(p, x, consts):
    h = jax.nn.relu(x @ p["dense0"]["kernel"] + p["dense0"]["bias"])
    return h @ p["classifier"]["kernel"] + p["classifier"]["bias"]

  x = jnp.array([[1.0, 0.0]])
  mask, info = localize.critmem_mask(logits_fn, params, x, jnp.array([0]), max_steps=4,
                                     units="channel", exclude=masking.path_contains("classifier"))
  np.testing.assert_array_equal(mask["dense0"]["kernel"], [[True, False], [True, False]])
  np.testing.assert_array_equal(mask["dense0"]["bias"], [True, False])
  assert not mask["classifier"]["kernel"].any()
  assert info["units"] == 2 and info["units_selected"] == 1 and info["flipped"] == 1
  # an example of class 1 never flips: unit 1 goes, then unit 0 (h0 = 0) has score 0, and as
  # published only a positive score is removed: it stalls with the bias 0.1 on class 1
  _, info = localize.critmem_mask(logits_fn, params, jnp.array([[0.0, 1.0]]), jnp.array([1]),
                                  max_steps=4, units="channel",
                                  exclude=masking.path_contains("classifier"))
  assert info["not_flipped"] == 1 and info["stalled"] == 1 and info["units_selected"] == 1
  # an example already misclassified zeroes nothing
  _, info = localize.critmem_mask(logits_fn, params, x, jnp.array([1]), max_steps=4,
                                  exclude=masking.path_contains("classifier"))
  assert info["units_selected"] == 0 and info["already_wrong"] == 1


def test_critmem_units_as_published():
  # Maini et al.: a 4-D kernel's output channel is one unit; every other element is its own
  params = {"conv": {"kernel": jnp.ones((1, 1, 2, 3))}, "norm": {"scale": jnp.ones(3)},
            "classifier": {"kernel": jnp.ones((3, 2)), "bias": jnp.ones(2)}}
  ids, u = localize.critical_units(params, units="maini")
  assert u == 3 + 3 + 6 + 2
  conv = np.asarray(ids["conv"]["kernel"])[0, 0]
  np.testing.assert_array_equal(conv - conv.min(), [[0, 1, 2], [0, 1, 2]])
  flat = np.concatenate([np.asarray(l).ravel() for l in jax.tree_util.tree_leaves(ids)])
  assert sorted(set(flat.tolist())) == list(range(u))  # every element in a unit, none shared
  assert np.asarray(ids["classifier"]["kernel"]).size == len(
      set(np.asarray(ids["classifier"]["kernel"]).ravel().tolist()))
  _, u_excl = localize.critical_units(params, masking.path_contains("classifier"), "maini")
  assert u_excl == 6
  _, u_ch = localize.critical_units(params, units="channel")
  assert u_ch == 3 + 2  # conv and classifier output channels (bias tied), no norm unit
  with pytest.raises(ValueError, match="units"):
    localize.critical_units(params, units="neurons")


def _critmem_reference(logits_fn, params, x, y, pop, cap):
  """Maini et al.'s loop, written plainly: per example, the batch-mean CE with the example's loss
  scaled by -B, one jax.grad per step, unit scores summed in numpy, stop at the flip."""
  ids, u = localize.critical_units(params, units="maini")
  leaves, treedef = jax.tree_util.tree_flatten(params)
  id_leaves = [np.asarray(i) for i in jax.tree_util.tree_leaves(ids)]
  selected = set()
  for xi, yi in zip(x, y):
    alive = np.ones(u, bool)
    for _ in range(cap):
      p = jax.tree_util.tree_unflatten(treedef, [l * alive[i] for l, i in zip(leaves, id_leaves)])

      def loss(q):
        rows = [(xi, yi, -len(pop[0]) - 1.0)] + list(zip(pop[0], pop[1], [1.0] * len(pop[0])))
        total = sum(c * -jax.nn.log_softmax(logits_fn(q, a, None))[b] for a, b, c in rows)
        return total / len(rows)

      if int(np.argmax(logits_fn(p, xi, None))) != int(yi):
        break
      g = jax.grad(loss)(p)
      score = np.zeros(u)
      for l, gl, i in zip(jax.tree_util.tree_leaves(p), jax.tree_util.tree_leaves(g), id_leaves):
        np.add.at(score, i.ravel(), np.asarray(l * gl, np.float64).ravel())
      score[~alive] = -np.inf
      if score.max() <= 0:
        break
      alive[int(np.argmax(score))] = False
    selected |= set(np.flatnonzero(~alive).tolist())
  return selected, ids


def test_critmem_with_population_equals_the_published_loop():
  key = jax.random.PRNGKey(3)
  k1, k2, k3, k4 = jax.random.split(key, 4)
  params = {"dense0": {"kernel": jax.random.normal(k1, (4, 6)), "bias": jnp.zeros(6)},
            "classifier": {"kernel": jax.random.normal(k2, (6, 3)), "bias": jnp.zeros(3)}}

  def logits_fn(p, x, consts):
    h = jax.nn.relu(x @ p["dense0"]["kernel"] + p["dense0"]["bias"])
    return h @ p["classifier"]["kernel"] + p["classifier"]["bias"]

  x = jax.random.normal(k3, (5, 4))
  y = jnp.argmax(jax.vmap(lambda a: logits_fn(params, a, None))(x), axis=1)  # all right
  pop = (jax.random.normal(k4, (7, 4)), jnp.arange(7) % 3)
  mask, info = localize.critmem_mask(logits_fn, params, x, y, population=pop, chunk_size=2)
  units = localize.critical_units(params, units="maini")[1]
  want, ids = _critmem_reference(logits_fn, params, np.asarray(x), np.asarray(y), pop, units)
  got = set(np.unique(np.concatenate([np.asarray(i)[np.asarray(m)] for i, m in zip(
      jax.tree_util.tree_leaves(ids), jax.tree_util.tree_leaves(mask))])).tolist())
  assert got == want and len(want) > 0
  assert info["population"] == 7 and info["flipped"] + info["stalled"] == 5
  # one removal per call: the pool carries every slot's state from call to call, same mask
  slow, slow_info = localize.critmem_mask(logits_fn, params, x, y, population=pop, chunk_size=2,
                                          inner_steps=1)
  assert all(np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(slow),
                                                  jax.tree_util.tree_leaves(mask)))
  assert slow_info["removals_mean"] == info["removals_mean"] and info["removals_max"] > 1
  # a cap across calls: at most 1 removal per example
  _, capped = localize.critmem_mask(logits_fn, params, x, y, population=pop, chunk_size=2,
                                    inner_steps=1, max_steps=1)
  assert capped["removals_max"] <= 1 and capped["units_selected"] <= 5
  with pytest.raises(ValueError, match="inner_steps"):
    localize.critmem_mask(logits_fn, params, x, y, inner_steps=0)
  # the population term changes the choice: the example's loss alone picks other units
  alone, _ = localize.critmem_mask(logits_fn, params, x, y, chunk_size=2)
  assert any(bool(np.any(np.asarray(a) != np.asarray(b))) for a, b in zip(
      jax.tree_util.tree_leaves(alone), jax.tree_util.tree_leaves(mask)))


def test_masks_differ_between_iid_and_non_iid_forget_sets(digits):
  from unlearn_jax.data import iid, non_iid
  from unlearn_jax.train import create_train_state, fit, make_optimizer
  model = build_model("mlp", 10, width=0.25, norm="batch")
  x, y = jnp.asarray(digits.train.x), jnp.asarray(digits.train.y)
  state = create_train_state(model, make_optimizer(learning_rate=0.1, total_steps=50),
                             jax.random.PRNGKey(0), digits.image_shape)
  state = fit(state, x, y, key=jax.random.PRNGKey(1), epochs=2, batch_size=64)
  loss = pex.inference_loss(model.apply)
  masks = {}
  for name, idx in (("iid", iid(len(y), seed=0, fraction=0.1)),
                    ("non_iid", non_iid(np.asarray(y), classes=(2, 5), seed=0, fraction=0.1))):
    s = localize.per_example_scores(loss, state.params, (x[idx], y[idx]), consts=state.model_state)
    masks[name] = localize.global_top_fraction_mask(localize.aggregate_channels(s), 0.3)
    assert masking.mask_count(masks[name]) == localize.budget_count(
        0.3, sum(int(np.size(l)) for l in jax.tree_util.tree_leaves(state.params)))
  a, b = (jax.tree_util.tree_leaves(masks[k]) for k in ("iid", "non_iid"))
  inter = sum(int(np.sum(np.asarray(u) & np.asarray(v))) for u, v in zip(a, b))
  union = sum(int(np.sum(np.asarray(u) | np.asarray(v))) for u, v in zip(a, b))
  assert inter / union < 0.9
