"""The training-style methods: ga, neggrad, neggrad_plus, random_label, salun, l1_sparse,
amnesiac, del (`40-methods.md`, `10-del.md` §4-6).

Cheap by construction (2 CPU cores): one `Model` object; two single originals trained with one
compiled step and stacked for the seed tests; short runs (1 epoch) whose configurations repeat
across tests, so the optimizer (cached per configuration) and the compiled steps are shared.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from unlearn_jax import localize, masking
from unlearn_jax.data import iid
from unlearn_jax.methods import MethodConfigError, UnlearnData, run_method
from unlearn_jax.methods import common, del_, l1_sparse, random_label
from unlearn_jax.models import build_model
from unlearn_jax.train import (create_train_state, cross_entropy, fit, make_optimizer, stack,
                               unstack)

SEEDS = (0, 1)


@pytest.fixture(scope="module")
def setup(digits):
  model = build_model("cnn", 10, width=0.5)
  n = len(digits.train)
  forget = iid(n, seed=1, count=128)  # one localization batch of 128: one compiled shape
  keep = np.setdiff1d(np.arange(n), forget)
  x, y = jnp.asarray(digits.train.x), jnp.asarray(digits.train.y)
  data = UnlearnData(retain_x=x[keep], retain_y=y[keep], forget_x=x[forget], forget_y=y[forget],
                     num_classes=digits.num_classes, model=model, image_shape=digits.image_shape)
  epochs, batch = 6, 64
  tx = make_optimizer(learning_rate=0.1, total_steps=epochs * (n // batch), weight_decay=5e-4)
  singles = []
  for s in SEEDS:  # two single runs share one compiled step (cheaper than a stacked compile)
    st = create_train_state(model, tx, jax.random.PRNGKey(s), digits.image_shape)
    singles.append(fit(st, x, y, key=jax.random.PRNGKey(10 + s), epochs=epochs, batch_size=batch))
  ms = singles[0].model_state  # reference loss of model 0 for `localize` (inference mode); one
  loss_fn = lambda p, b: cross_entropy(singles[0].apply_fn(p, ms, b[0], False)[0], b[1])
  return dict(data=data, singles=singles, stacked=stack(singles), loss_fn=loss_fn)


def keys_for(seeds=SEEDS):
  return jnp.stack([jax.random.PRNGKey(100 + s) for s in seeds])


def random_mask(params, seed, p=0.5):
  """A random bool mask (numpy RNG: no per-shape compilation)."""
  rng = np.random.default_rng(seed)
  return jax.tree_util.tree_map(lambda l: jnp.asarray(rng.random(l.shape) < p), params)


def max_abs_diff(a, b):
  return max(float(jnp.max(jnp.abs(u - v))) for u, v in
             zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


def assert_frozen_identical(new, old, frozen):
  """Where `frozen` is True, `new` equals `old` bit for bit."""
  for path_new, o, f in zip(jax.tree_util.tree_flatten_with_path(new)[0],
                            jax.tree_util.tree_leaves(old), jax.tree_util.tree_leaves(frozen)):
    path, n = path_new
    n, o, f = np.asarray(n), np.asarray(o), np.asarray(f, bool)
    assert np.array_equal(n[f], o[f]), masking.keypath_str(path)


def some_changed(new, old, where):
  return any(np.any(np.asarray(n)[np.asarray(w, bool)] != np.asarray(o)[np.asarray(w, bool)])
             for n, o, w in zip(jax.tree_util.tree_leaves(new), jax.tree_util.tree_leaves(old),
                                jax.tree_util.tree_leaves(where)))


not_ = lambda tree: jax.tree_util.tree_map(lambda m: ~np.asarray(m, bool), tree)
ONE_EPOCH = {"epochs": 1}


# ---------------------------------------------------------------------------------------------
# Stacked seeds (vmap) equal sequential runs; per-seed masks keep frozen params bit-identical
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["random_label", "neggrad_plus"])
def test_vmapped_seeds_equal_sequential_runs_with_per_seed_masks(setup, name):
  data, stacked = setup["data"], setup["stacked"]
  masks = [random_mask(s.params, 7 + i) for i, s in enumerate(setup["singles"])]
  stacked_mask = jax.tree_util.tree_map(lambda *m: jnp.asarray(np.stack(m)), *masks)
  keys = keys_for()
  vm = run_method(name, stacked, dataclasses.replace(data, model_axis="vmap"), ONE_EPOCH, keys,
                  mask=stacked_mask)
  assert vm.diverged.shape == (2,) and not vm.diverged.any()
  for i, single in enumerate(setup["singles"]):
    one = run_method(name, single, data, ONE_EPOCH, keys[i], mask=masks[i])
    assert one.diverged.shape == () and not one.diverged
    assert max_abs_diff(unstack(vm.state, i).params, one.state.params) < 1e-4
    assert_frozen_identical(one.state.params, single.params, not_(masks[i]))
    assert_frozen_identical(unstack(vm.state, i).params, single.params, not_(masks[i]))
    assert some_changed(one.state.params, single.params, masks[i])
    assert one.cost["example_gradients"] == vm.cost["example_gradients"]
  # Different seeds got different random draws (labels / batches): the models differ.
  assert max_abs_diff(unstack(vm.state, 0).params, unstack(vm.state, 1).params) > 1e-3


def test_finetune_with_mask_keeps_frozen_params(setup):
  single = setup["singles"][0]
  mask = random_mask(single.params, 3, p=0.3)
  res = run_method("finetune", single, setup["data"], ONE_EPOCH, keys_for()[0], mask=mask)
  assert_frozen_identical(res.state.params, single.params, not_(mask))
  assert some_changed(res.state.params, single.params, mask)


# ---------------------------------------------------------------------------------------------
# Divergence and config errors
# ---------------------------------------------------------------------------------------------


def test_unstable_gradient_ascent_is_reported_as_diverged(setup):
  res = run_method("ga", setup["singles"][0], setup["data"],
                   {"learning_rate": 1e4, "epochs": 3}, keys_for()[0])
  assert np.asarray(res.diverged).dtype == bool and np.all(res.diverged)
  assert res.cost["example_gradients"] > 0


BAD = [
    ("ga", {"epochs": 0}, "epochs"), ("ga", {"epochs": 1.5}, "epochs"),
    ("neggrad", {"learning_rate": 0.0}, "learning_rate"),
    ("neggrad_plus", {"beta": -0.1}, "beta"), ("neggrad_plus", {"beta": 2}, "beta"),
    ("neggrad_plus", {"forget_batch_size": 0}, "forget_batch_size"),
    ("random_label", {"batch_size": 0}, "batch_size"),
    ("random_label", {"momentum": 1.0}, "momentum"),
    ("random_label", {"schedule": "linear"}, "schedule"),
    ("amnesiac", {"weight_decay": -1.0}, "weight_decay"),
    ("salun", {"alpha": 0.0}, "alpha"), ("salun", {"alpha": 1.5}, "alpha"),
    ("l1_sparse", {"gamma": -1e-5}, "gamma"),
    ("del", {"alpha": 1.5}, "alpha"), ("del", {"criterion": "random"}, "criterion"),
    ("del", {"granularity": "layer"}, "granularity"), ("del", {"top_h": 2.0}, "top_h"),
    ("del", {"classifier": "head"}, "head"),
    ("del", {"final_lr_fraction": 2.0}, "final_lr_fraction"),
]


@pytest.mark.parametrize("name, cfg, word", BAD)
def test_bad_config_is_a_clear_error_naming_the_method(setup, name, cfg, word):
  with pytest.raises(MethodConfigError, match=f"method '{name}'.*{word}"):
    run_method(name, setup["singles"][0], setup["data"], cfg, keys_for()[0])


# ---------------------------------------------------------------------------------------------
# Random labels, the l1 schedule
# ---------------------------------------------------------------------------------------------


def test_random_labels_differ_from_true_labels_and_per_seed(setup):
  y = jnp.concatenate([setup["data"].forget_y] * 16)  # every class, many draws
  wrong = random_label.random_labels(jax.random.PRNGKey(0), y, 10)
  assert not np.any(np.asarray(wrong) == np.asarray(y))
  assert set(np.unique(np.asarray(wrong))) == set(range(10))
  anyl = random_label.random_labels(jax.random.PRNGKey(0), y, 10, allow_true_label=True)
  assert 0.05 < float(np.mean(np.asarray(anyl) == np.asarray(y))) < 0.2
  per_seed = random_label.random_labels(keys_for(), y, 10, stacked=True)
  assert per_seed.shape == (2, len(y))
  np.testing.assert_array_equal(per_seed[1], random_label.random_labels(keys_for()[1], y, 10))
  assert np.any(np.asarray(per_seed[0]) != np.asarray(per_seed[1]))


def test_l1_coefficient_decays_linearly_to_zero():
  gamma, total = 5e-5, 40
  coef = lambda t: float(l1_sparse.l1_coefficient(gamma, jnp.asarray(t, jnp.int32), total))
  assert coef(0) == pytest.approx(gamma)
  assert coef(10) == pytest.approx(0.75 * gamma)
  assert coef(40) == 0.0 and coef(50) == 0.0
  params = {"a": jnp.array([1.0, -2.0]), "b": {"c": jnp.array([[-0.5]])}}
  assert float(l1_sparse.l1_norm(params)) == pytest.approx(3.5)


# ---------------------------------------------------------------------------------------------
# Localization: per-model masks, SalUn, DEL
# ---------------------------------------------------------------------------------------------


def test_localization_masks_per_model_match_localize(setup):
  data, singles = setup["data"], setup["singles"]
  kw = dict(alpha=0.5, criterion="grad", granularity="param", batch_size=128)
  stacked_masks = common.localization_masks(setup["stacked"], data.forget_x, data.forget_y, **kw)
  for i, single in enumerate(singles):
    mine = common.localization_masks(single, data.forget_x, data.forget_y, **kw)
    model_i = jax.tree_util.tree_map(lambda m: m[i], stacked_masks)
    for a, c in zip(*(jax.tree_util.tree_leaves(t) for t in (mine, model_i))):
      assert np.mean(np.asarray(a) != np.asarray(c)) < 1e-3
    assert masking.mask_fraction(mine) == pytest.approx(0.5, abs=1e-3)
    if i == 0:  # the reference implementation (one model: it compiles per loss function)
      ref = localize.salun_mask(setup["loss_fn"], single.params, data.forget_x, data.forget_y,
                                0.5)
      for a, b in zip(*(jax.tree_util.tree_leaves(t) for t in (mine, ref))):
        assert np.mean(np.asarray(a) != np.asarray(b)) < 1e-3
  # Masks are per model: the two seeds' masks differ.
  m0, m1 = (jax.tree_util.tree_map(lambda m: m[i], stacked_masks) for i in (0, 1))
  assert any(np.any(np.asarray(a) != np.asarray(b))
             for a, b in zip(jax.tree_util.tree_leaves(m0), jax.tree_util.tree_leaves(m1)))


def test_salun_changes_only_salient_params(setup):
  data, single = setup["data"], setup["singles"][0]
  res = run_method("salun", single, data, ONE_EPOCH, keys_for()[0])
  assert res.info["saliency_fraction"][0] == pytest.approx(0.5, abs=1e-3)
  assert res.info["mask_fraction"] == res.info["saliency_fraction"]
  saliency = common.localization_masks(single, data.forget_x, data.forget_y, alpha=0.5,
                                       criterion="grad", granularity="param")
  assert_frozen_identical(res.state.params, single.params, not_(saliency))
  assert some_changed(res.state.params, single.params, saliency)
  assert res.cost["example_gradients"] > len(data.retain_x) // 64 * 64  # + localization pass
  # With a user mask only the intersection may change.
  user = random_mask(single.params, 11)
  res2 = run_method("salun", single, data, ONE_EPOCH, keys_for()[0], mask=user)
  assert res2.info["mask_fraction"][0] == pytest.approx(0.25, abs=0.03)
  both = masking.mask_intersection(user, saliency)
  assert_frozen_identical(res2.state.params, single.params, not_(both))


def test_del_reset_uses_fresh_init_on_mask(setup):
  data, single = setup["data"], setup["singles"][0]
  cfg = dict(del_.DEFAULTS)
  init_key = jax.random.PRNGKey(5)
  reset_state, mask, scored = del_.localize_and_reset(single, data, cfg, init_key)
  assert scored == len(data.forget_x)
  assert masking.mask_fraction(mask) == pytest.approx(0.3, abs=1e-3)
  fresh = del_.fresh_params(data, init_key)
  for r, f, o, m in zip(*(jax.tree_util.tree_leaves(t) for t in
                          (reset_state.params, fresh, single.params, mask))):
    r, f, o, m = map(np.asarray, (r, f, o, m))
    np.testing.assert_array_equal(r[m], f[m])
    np.testing.assert_array_equal(r[~m], o[~m])
  # θ0 is a fresh init, not the trained weights, so the reset moved the masked weights.
  assert some_changed(reset_state.params, single.params, mask)
  # The mask is DEL's localization (weighted_grad, channel, top-10 %, α = 0.3).
  ref = localize.localization_mask(setup["loss_fn"], single.params, data.forget_x,
                                   data.forget_y, 0.3)
  diff = sum(int(np.sum(np.asarray(a) != np.asarray(b))) for a, b in
             zip(jax.tree_util.tree_leaves(mask), jax.tree_util.tree_leaves(ref)))
  assert diff <= 0.01 * masking.mask_count(ref)


@pytest.mark.parametrize("user_mask", [False, True])
def test_del_changes_only_mask_and_classifier(setup, user_mask):
  data, single = setup["data"], setup["singles"][0]
  key = keys_for()[0]
  mask = random_mask(single.params, 13, p=0.2) if user_mask else None
  res = run_method("del", single, data, ONE_EPOCH, key, mask=mask)
  assert not res.diverged
  if user_mask:
    reset = mask
    assert res.info["localized"] is False
    assert res.cost["example_gradients"] == len(data.retain_x) // 64 * 64
  else:
    init_key, _ = common.split_keys(key, False)
    _, reset, _ = del_.localize_and_reset(single, data, dict(del_.DEFAULTS), init_key)
    assert res.info["localized"] is True
    assert res.cost["example_gradients"] == len(data.retain_x) // 64 * 64 + len(data.forget_x)
  assert res.info["mask_fraction"][0] == pytest.approx(masking.mask_fraction(reset))
  trainable = masking.always_trainable(reset, masking.path_contains("classifier"))
  assert res.info["trainable_fraction"][0] == pytest.approx(masking.mask_fraction(trainable))
  assert_frozen_identical(res.state.params, single.params, not_(trainable))
  assert some_changed(res.state.params, single.params, trainable)
  assert not np.array_equal(np.asarray(res.state.params["classifier"]["kernel"]),
                            np.asarray(single.params["classifier"]["kernel"]))
