"""DEL's method options (`methods/del_.py`): per-example aggregation, the official batching, and
bit-exactness outside the mask and the classifier."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from unlearn_jax import localize, masking, pex
from unlearn_jax.data import iid
from unlearn_jax.methods import MethodConfigError, UnlearnData, check_method_config, run_method
from unlearn_jax.methods import common
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


def _outside_unchanged(before, after, trainable):
  for p0, p1, m in zip(*(jax.tree_util.tree_leaves(t) for t in (before, after, trainable))):
    p0, p1, m = np.asarray(p0), np.asarray(p1), np.asarray(m, bool)
    np.testing.assert_array_equal(p1[~m], p0[~m])  # bit-identical
  changed = sum(int(np.sum(np.asarray(a) != np.asarray(b))) for a, b in zip(
      jax.tree_util.tree_leaves(before), jax.tree_util.tree_leaves(after)))
  assert changed > 0


@pytest.mark.parametrize("options", [{}, {"aggregation": "abs_then_sum", "pex_chunk_size": 50},
                                     {"mask_drop_last": True, "mask_batch_size": 64}])
def test_del_is_bit_exact_outside_mask_and_classifier(setup, options):
  data, state = setup
  cfg = {"epochs": 1, "alpha": 0.3, **options}
  keys = jnp.stack([jax.random.PRNGKey(7), jax.random.PRNGKey(8)])
  res = run_method("del", state, data, cfg, keys)
  # recompute the method's mask the way its options say, then check everything outside it
  x, y = data.forget_x, data.forget_y
  if options.get("mask_drop_last"):
    x, y, _ = official_batches(x, y, 64, 0)
    assert len(x) == (len(data.forget_x) // 64) * 64
  if options.get("aggregation") == "abs_then_sum":
    s = localize.per_example_scores(pex.inference_loss(state.apply_fn), state.params,
                                    (x, jnp.asarray(y, jnp.int32)), "weighted_grad",
                                    "abs_then_sum", consts=state.model_state, stacked=True)
    masks = [localize.global_top_fraction_mask(localize.aggregate_channels(
        jax.tree_util.tree_map(lambda a: a[i], s)), 0.3) for i in range(2)]
    mask = jax.tree_util.tree_map(lambda *m: jnp.stack(m), *masks)
  else:
    mask = common.localization_masks(state, x, y, alpha=0.3, batch_size=int(
        cfg.get("mask_batch_size", 128)), model_axis=AXIS)
  np.testing.assert_allclose(res.info["mask_fraction"], [masking.mask_fraction(
      jax.tree_util.tree_map(lambda a: a[i], mask)) for i in range(2)])
  trainable = masking.always_trainable(mask, masking.path_contains("classifier"))
  _outside_unchanged(state.params, res.state.params, trainable)


def test_per_example_aggregation_differs_and_options_are_checked(setup):
  data, state = setup
  base = check_method_config("del", {})
  assert base["aggregation"] == "sum_then_abs" and base["mask_drop_last"] is False
  for bad in ({"aggregation": "max"}, {"mask_drop_last": 1}, {"mask_shuffle_seed": -1},
              {"pex_chunk_size": 1.5}):
    with pytest.raises(MethodConfigError, match="method 'del'"):
      check_method_config("del", bad)
  with pytest.raises(MethodConfigError, match="drops all"):
    official_batches(data.forget_x, data.forget_y, 10_000, 0)
  # sum_then_abs from per-example gradients = the batch-mean score up to a constant when all
  # batches are full: same mask as the method's batch path
  n = (len(data.forget_x) // 16) * 16
  x, y = data.forget_x[:n], jnp.asarray(data.forget_y[:n], jnp.int32)
  batch = common.localization_masks(state, x, y, alpha=0.3, batch_size=16, model_axis=AXIS)
  s = localize.per_example_scores(pex.inference_loss(state.apply_fn), state.params, (x, y),
                                  consts=state.model_state, stacked=True, chunk_size=40)
  for i in range(2):
    per = localize.global_top_fraction_mask(localize.aggregate_channels(
        jax.tree_util.tree_map(lambda a: a[i], s)), 0.3)
    ref = jax.tree_util.tree_map(lambda a: a[i], batch)
    same = sum(int(np.sum(np.asarray(a) == np.asarray(b))) for a, b in zip(
        jax.tree_util.tree_leaves(per), jax.tree_util.tree_leaves(ref)))
    total = sum(int(np.size(a)) for a in jax.tree_util.tree_leaves(per))
    assert same >= total - 2 * 64  # equal up to float ties at the channel on the budget's edge


def test_official_recipe_is_a_valid_config():
  from experiments.configs import recipes
  cfg = check_method_config("del", recipes.recipe_values("del", "cifar10", "official", {}))
  assert cfg["mask_drop_last"] and cfg["mask_batch_size"] == 128 and cfg["epochs"] == 30
  assert cfg["learning_rate"] == 0.015 and cfg["final_lr_fraction"] == 0.01
  assert cfg["schedule"] == "cosine_epoch"
