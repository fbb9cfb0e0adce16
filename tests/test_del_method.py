"""DEL's method options (`methods/del_.py`): per-example aggregation, the official batching, and
bit-exactness outside the mask and the classifier."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from unlearn_jax import localize, masking
from unlearn_jax.data import iid
from unlearn_jax.methods import MethodConfigError, UnlearnData, check_method_config, run_method
from unlearn_jax.methods import del_
from unlearn_jax.methods.del_ import official_batches
from unlearn_jax.models import build_model
from unlearn_jax.train import create_train_state, fit, make_optimizer

AXIS = "vmap"


@pytest.fixture(scope="module")
def setup(digits):
  model = build_model("mlp", 10, width=0.25, norm="batch")
  n = len(digits.train)
  forget = iid(n, seed=0, fraction=0.1)
  keep = np.setdiff1d(np.arange(n), forget)
  x, y = jnp.asarray(digits.train.x), jnp.asarray(digits.train.y)
  data = UnlearnData(retain_x=x[keep], retain_y=y[keep], forget_x=x[forget], forget_y=y[forget],
                     num_classes=10, model=model, image_shape=digits.image_shape, model_axis=AXIS)
  keys = jnp.stack([jax.random.PRNGKey(s) for s in (0, 1)])
  tx = make_optimizer(learning_rate=0.1, total_steps=100, weight_decay=5e-4)
  state = create_train_state(model, tx, keys, digits.image_shape)
  state = fit(state, x, y, key=keys, epochs=3, batch_size=64, model_axis=AXIS)
  return data, state


def _take(tree, i):
  return jax.tree_util.tree_map(lambda a: a[i], tree)


def _reference_mask(state, x, y, alpha=0.3, batches=None, aggregation="sum_then_abs"):
  """DEL's mask per model from a plain loop of jax.grad: one example at a time (every example
  weighs the same: sum_then_abs, or |.| per example: abs_then_sum) or, with `batches`, the sum of
  batch-mean gradients over consecutive batches of that size (DEL's code)."""
  masks = []
  for i in range(2):
    params, consts = _take(state.params, i), _take(state.model_state, i)

    def loss(p, xb, yb):
      logits = state.apply_fn(p, consts, xb, False)[0]
      return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(len(yb)), yb])

    grad = jax.jit(jax.grad(loss))
    rows = ([(x[j:j + 1], y[j:j + 1]) for j in range(len(x))] if batches is None else
            [(x[j:j + batches], y[j:j + batches]) for j in range(0, len(x), batches)])
    total = jax.tree_util.tree_map(jnp.zeros_like, params)
    for xb, yb in rows:
      g = grad(params, xb, yb)
      if aggregation == "abs_then_sum":
        g = jax.tree_util.tree_map(lambda p_, gi: jnp.abs(p_ * gi), params, g)
      total = jax.tree_util.tree_map(jnp.add, total, g)
    scores = total if aggregation == "abs_then_sum" else jax.tree_util.tree_map(
        lambda p_, t: jnp.abs(p_ * t), params, total)
    masks.append(localize.global_top_fraction_mask(localize.aggregate_channels(scores), alpha))
  return jax.tree_util.tree_map(lambda *m: jnp.stack(m), *masks)


def _disagreement(a, b) -> int:
  return sum(int(np.sum(np.asarray(u) != np.asarray(v))) for u, v in zip(
      jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


def _edge_slack(mask) -> int:
  """Elements of the one channel on the budget's edge, where float ties may fall either way."""
  return 2 * max(int(np.size(l[0]) // np.shape(l)[-1]) if np.ndim(l) > 2 else 1
                 for l in jax.tree_util.tree_leaves(mask))


def _reset_exactly_on(before, after, trainable, slack):
  """The update touched the trainable set and nothing else: outside it the parameters are
  bit-identical, inside they changed (reset to θ0, then trained), up to `slack` elements of the
  channel on the budget's edge where the reference's float ties may fall the other way (a leak
  of the update would change every element outside)."""
  changed_out, unchanged_in, total_in = 0, 0, 0
  for p0, p1, m in zip(*(jax.tree_util.tree_leaves(t) for t in (before, after, trainable))):
    p0, p1, m = np.asarray(p0), np.asarray(p1), np.asarray(m, bool)
    changed_out += int(np.sum(p1[~m] != p0[~m]))
    unchanged_in += int(np.sum(p1[m] == p0[m]))
    total_in += int(m.sum())
  assert total_in > 0 and changed_out <= slack, (changed_out, slack)
  assert unchanged_in <= slack + 0.01 * total_in, (unchanged_in, total_in)


@pytest.mark.parametrize("options", [{}, {"aggregation": "abs_then_sum", "pex_chunk_size": 50},
                                     {"mask_drop_last": True, "mask_batch_size": 64,
                                      "aggregation": "batch_means"}])
def test_del_resets_and_trains_exactly_the_reference_mask(setup, options):
  data, state = setup
  cfg = {"epochs": 1, "alpha": 0.3, **options}
  keys = jnp.stack([jax.random.PRNGKey(7), jax.random.PRNGKey(8)])
  res = run_method("del", state, data, cfg, keys)
  # the mask from an independent loop of jax.grad, with the batching the options say
  x, y = data.forget_x, jnp.asarray(data.forget_y, jnp.int32)
  batches = None
  if options.get("mask_drop_last"):
    x, y, _ = official_batches(x, y, 64, 0)
    assert len(x) == (len(data.forget_x) // 64) * 64
    batches = 64
  mask = _reference_mask(state, x, y, batches=batches,
                         aggregation=options.get("aggregation", "sum_then_abs"))
  trainable = masking.always_trainable(mask, masking.path_contains("classifier"))
  # sum_then_abs: the same gradient sums in the same order, so no slack is needed
  slack = 0 if not options else _edge_slack(mask)
  _reset_exactly_on(state.params, res.state.params, trainable, slack)


def test_one_del_mask_in_the_method_and_the_study(setup):
  from types import SimpleNamespace

  import ml_collections
  from unlearn_jax.pipelines import del_localization as study
  data, state = setup
  x, y = data.forget_x, jnp.asarray(data.forget_y, jnp.int32)
  ref = _reference_mask(state, x, y)
  method = del_.localization_mask(state, x, y, check_method_config("del", {}), model_axis=AXIS)
  exp = SimpleNamespace(seeds=[0, 1], config=SimpleNamespace(train=SimpleNamespace(
      model_axis=AXIS)))
  loc = ml_collections.ConfigDict(dict(top_h="ten_percent_of_channels", mask_batch_size=128,
                                       chunk_size=0))
  in_study, _ = study.compute_masks(exp, state, data, "del", 0.3, loc)
  assert _disagreement(method, ref) <= _edge_slack(ref)
  assert _disagreement(in_study, method) == 0  # the same function
  # the batch size of the gradient pass only sets the memory (every example weighs the same)
  small = del_.localization_mask(state, x, y, check_method_config("del", {"mask_batch_size": 16}),
                                 model_axis=AXIS)
  assert _disagreement(small, method) <= _edge_slack(ref)


def test_the_named_aggregations_differ_and_options_are_checked(setup):
  data, state = setup
  base = check_method_config("del", {})
  assert base["aggregation"] == "sum_then_abs" and base["mask_drop_last"] is False
  for bad in ({"aggregation": "max"}, {"mask_drop_last": 1}, {"mask_shuffle_seed": -1},
              {"pex_chunk_size": 1.5}):
    with pytest.raises(MethodConfigError, match="method 'del'"):
      check_method_config("del", bad)
  with pytest.raises(MethodConfigError, match="drops all"):
    official_batches(data.forget_x, data.forget_y, 10_000, 0)
  x, y = data.forget_x, jnp.asarray(data.forget_y, jnp.int32)
  # a partial last batch of 29 (129 = 100 + 29): its examples weigh 100/29 more in batch_means
  assert len(x) % 100 == 29
  default = del_.localization_mask(state, x, y, base, model_axis=AXIS)
  means = del_.localization_mask(state, x, y, check_method_config(
      "del", {"aggregation": "batch_means", "mask_batch_size": 100}), model_axis=AXIS)
  per_ex = del_.localization_mask(state, x, y, check_method_config(
      "del", {"aggregation": "abs_then_sum", "pex_chunk_size": 40}), model_axis=AXIS)
  slack = _edge_slack(default)
  # each variant is its own definition: equal to its reference, unequal to the default
  assert _disagreement(means, _reference_mask(state, x, y, batches=100)) <= slack
  assert _disagreement(per_ex, _reference_mask(state, x, y, aggregation="abs_then_sum")) <= slack
  for other in (means, per_ex):
    assert _disagreement(other, default) > slack  # more than float ties can explain


def test_official_recipe_is_a_valid_config():
  from experiments.configs import recipes
  cfg = check_method_config("del", recipes.recipe_values("del", "cifar10", "official", {}))
  assert cfg["mask_drop_last"] and cfg["mask_batch_size"] == 128 and cfg["epochs"] == 30
  assert cfg["learning_rate"] == 0.015 and cfg["final_lr_fraction"] == 0.01
  assert cfg["schedule"] == "cosine_epoch"


def test_vit_official_recipe_row_mean_and_the_whole_mlp_head(digits):
  from experiments.configs import unlearn as unlearn_config
  vit = unlearn_config.get_config("dataset=svhn_cropped,model=vit,recipe=official")
  assert vit.method_configs["del"].top_h == "all"  # DEL's ViT: the plain row mean
  assert vit.method_configs["del"].classifier == "final_ln+classifier"
  resnet = unlearn_config.get_config("dataset=svhn_cropped,recipe=official")
  assert resnet.method_configs["del"].top_h == "ten_percent_of_channels"
  assert resnet.method_configs["del"].classifier == "classifier"
  # top_h = 'all': every output channel scored by the plain mean of its row
  s = jnp.arange(12.0).reshape(3, 4)  # dense kernel [in=3, out=4]
  agg = localize.aggregate_channels({"dense": {"kernel": s}}, "all")["dense"]["kernel"]
  np.testing.assert_allclose(agg, np.broadcast_to(np.asarray(s).mean(axis=0), (3, 4)))
  # DEL on a small ViT with that head: LayerNorm and Linear of the head train, the rest
  # outside the mask stays bit-identical
  model = build_model("vit", 10, width=0.25, patch_size=4, depth=1)
  n = len(digits.train)
  forget = iid(n, seed=0, fraction=0.1)
  keep = np.setdiff1d(np.arange(n), forget)
  x, y = jnp.asarray(digits.train.x), jnp.asarray(digits.train.y)
  data = UnlearnData(retain_x=x[keep], retain_y=y[keep], forget_x=x[forget], forget_y=y[forget],
                     num_classes=10, model=model, image_shape=digits.image_shape)
  state = create_train_state(model, make_optimizer(learning_rate=0.05, total_steps=40),
                             jax.random.PRNGKey(0), digits.image_shape)
  state = fit(state, x, y, key=jax.random.PRNGKey(1), epochs=1, batch_size=64)
  cfg = {"epochs": 1, "alpha": 0.02, "top_h": "all", "classifier": "final_ln+classifier"}
  res = run_method("del", state, data, cfg, jax.random.PRNGKey(2))
  for layer in ("final_ln", "classifier"):
    for k, before in state.params[layer].items():
      after = np.asarray(res.state.params[layer][k])
      assert np.mean(after != np.asarray(before)) > 0.99, (layer, k)
  frac = float(np.mean(res.info["trainable_fraction"]))
  head = sum(int(np.size(l)) for name in ("final_ln", "classifier")
             for l in jax.tree_util.tree_leaves(state.params[name]))
  total = sum(int(np.size(l)) for l in jax.tree_util.tree_leaves(state.params))
  assert frac <= 0.02 + head / total + 1e-9
  with pytest.raises(MethodConfigError, match="'mlp_head'"):
    run_method("del", state, data, {**cfg, "classifier": "mlp_head+classifier"},
               jax.random.PRNGKey(2))
