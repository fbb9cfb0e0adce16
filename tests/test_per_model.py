"""Per-model training subsets and per-model forget sets (`55-shadow-eval.md`, issue 18).

The reference is always a separate single-model run: model k of a stacked group trained on its
own subset (or unlearning its own forget set) must equal model k trained alone on those rows
with key k. A small MLP with BatchNorm on sklearn digits keeps every compile to seconds; the
model axis is `unrolled` (exact on CPU: the same per-model computation), with one `vmap` case.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from unlearn_jax.data import shadows
from unlearn_jax.methods import METHODS, MethodConfigError, UnlearnData, run_method
from unlearn_jax.methods import base
from unlearn_jax.models import build_model
from unlearn_jax.train import (create_train_state, fit, make_optimizer, stack, train_step,
                               unstack)

N = 3
POOL = 360  # the training set of this test: the first POOL digits


def _close(a, b, tol):
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=tol, atol=tol)


@pytest.fixture(scope="module")
def setup(digits):
  x = jnp.asarray(digits.train.x[:POOL])
  y = jnp.asarray(digits.train.y[:POOL], jnp.int32)
  model = build_model("mlp", 10, width=0.25)  # BatchNorm: statistics are threaded per model
  keys = jnp.stack([jax.random.PRNGKey(10 + k) for k in range(N)])
  return dict(x=x, y=y, model=model, keys=keys, image_shape=digits.image_shape)


def _fresh(setup, steps):
  tx = make_optimizer(learning_rate=0.05, total_steps=steps, momentum=0.9, weight_decay=5e-4)
  return create_train_state(setup["model"], tx, setup["keys"], setup["image_shape"])


@pytest.mark.parametrize("axis,tol", [("unrolled", 1e-6), ("vmap", 1e-5)])
def test_fit_with_subsets_equals_models_trained_one_by_one(setup, axis, tol):
  subsets, keep = shadows.random_subsets(N + 1, POOL, seed=0, design="independent",
                                         fraction=0.5)
  subsets = subsets[:N]
  state = _fresh(setup, 2 * (len(subsets[0]) // 32))
  stacked = fit(state, setup["x"], setup["y"], key=setup["keys"], epochs=2, batch_size=32,
                model_axis=axis, subsets=subsets)
  for k in range(N):
    rows = jnp.asarray(subsets[k])
    single = fit(unstack(state, k), setup["x"][rows], setup["y"][rows], key=setup["keys"][k],
                 epochs=2, batch_size=32)
    _close(unstack(stacked, k).params, single.params, tol)
    _close(unstack(stacked, k).model_state, single.model_state, tol)
  # the subsets matter: without them every model trains on all rows
  full = fit(state, setup["x"], setup["y"], key=setup["keys"], epochs=1, batch_size=32,
             model_axis=axis)
  assert not np.allclose(np.asarray(jax.tree_util.tree_leaves(full.params)[0]),
                         np.asarray(jax.tree_util.tree_leaves(stacked.params)[0]))


def test_fit_rejects_bad_subsets(setup):
  state = _fresh(setup, 10)
  for bad, msg in [(np.zeros((N, 4), np.float32), "integer"),
                   (np.zeros((N + 1, 4), np.int32), "shape"),
                   (np.full((N, 4), POOL, np.int32), r"\[0, 360\)")]:
    with pytest.raises(ValueError, match=msg):
      fit(state, setup["x"], setup["y"], key=setup["keys"], epochs=1, batch_size=2, subsets=bad)


def test_shadow_designs_are_balanced_and_deterministic():
  subsets, keep = shadows.random_subsets(8, 101, seed=3)
  assert subsets.shape == (8, 50) and keep.shape == (8, 101)
  assert (keep.sum(1) == 50).all()
  # complement pairs: every example in at most one model of a pair, in 4 of 8 models but the
  # one example per pair that an odd n leaves out
  assert not (keep[0::2] & keep[1::2]).any()
  assert set(keep.sum(0).tolist()) <= {3, 4} and (keep.sum(0) == 4).sum() >= 101 - 4
  again, _ = shadows.random_subsets(8, 101, seed=3)
  np.testing.assert_array_equal(subsets, again)
  ind, k2 = shadows.random_subsets(5, 100, seed=0, design="independent", fraction=0.7)
  assert ind.shape == (5, 70) and (k2.sum(1) == 70).all()
  with pytest.raises(ValueError, match="even"):
    shadows.random_subsets(3, 10, seed=0)
  with pytest.raises(ValueError, match="unknown shadow design"):
    shadows.random_subsets(2, 10, seed=0, design="halves")


def test_subsets_from_mask_pads_with_own_examples():
  keep = np.zeros((2, 10), bool)
  keep[0, :6] = True
  keep[1, 6:] = True  # 4 examples
  sub = shadows.subsets_from_mask(keep, seed=0)
  assert sub.shape == (2, 6)
  assert set(sub[0]) == set(range(6))
  assert set(sub[1]) == set(range(6, 10)) and len(np.unique(sub[1])) == 4
  with pytest.raises(ValueError, match="no training example"):
    shadows.subsets_from_mask(np.zeros((2, 3), bool), seed=0)


def test_per_model_forget_sets_come_from_each_models_subset_and_pool():
  subsets, keep = shadows.random_subsets(4, 200, seed=1)
  pool = np.arange(0, 200, 2)
  forget, retain = shadows.per_model_forget_sets(subsets, size=10, pool=pool, seed=0)
  assert forget.shape == (4, 10) and retain.shape == (4, 90)
  for k in range(4):
    assert set(forget[k]) <= set(subsets[k]) & set(pool)
    assert set(forget[k]) | set(retain[k]) == set(subsets[k])
    assert not set(forget[k]) & set(retain[k])
  with pytest.raises(ValueError, match="fewer than the forget size"):
    shadows.per_model_forget_sets(subsets, size=80, pool=pool, seed=0)


# --- every method with a per-model split equals separate single-model runs -------------------

# Small, fast settings for every method (the procedure, not the tuning, is under test).
OVERRIDES = {
    "retrain": dict(epochs=1, batch_size=32),
    "finetune": dict(epochs=1, batch_size=32),
    "ga": dict(epochs=1, batch_size=8, learning_rate=0.01),
    "neggrad": dict(epochs=1, batch_size=8, learning_rate=0.01),
    "neggrad_plus": dict(epochs=1, batch_size=32, forget_batch_size=8, beta=0.5),
    "random_label": dict(epochs=1, batch_size=32),
    "salun": dict(epochs=1, batch_size=32, alpha=0.3, mask_batch_size=16),
    "l1_sparse": dict(epochs=1, batch_size=32, gamma=1e-3),
    "scrub": dict(epochs=2, max_steps=1, forget_batch_size=8, retain_batch_size=32),
    "ssd": dict(selection=2.0, dampening=1.0, batch_size=16),
    # SGD: Adam's m/√v turns last-ulp differences of near-zero gradients (XLA fuses the N-model
    # program differently from a single model's) into lr-sized steps (measured 1e-4 after one
    # epoch at lr 1e-3; 1e-8 with SGD), which would hide the procedure under test.
    "bad_teacher": dict(epochs=1, batch_size=32, retain_fraction=0.5, optimizer="sgd"),
    "amnesiac": dict(epochs=1, batch_size=32),
    "single_gradient": dict(reference="trained", train_batch_size=16, learning_rate=0.01),
    "del": dict(epochs=1, batch_size=32, mask_batch_size=16),
}
VARIANTS = [(m, {}) for m in METHODS] + [
    ("random_label", dict(procedure="forget_then_retain")),
    ("ga", dict(epoch_length="retain", retain_batch_size=32)),
    ("neggrad", dict(form="weighted", retain_batch_size=32, l2=0.1)),
    ("del", dict(aggregation="abs_then_sum", pex_chunk_size=8)),
    ("del", dict(mask_drop_last=True)),
    ("del", dict(criterion="weighted_grad_all")),
    ("single_gradient", dict(form="old", batch_size=7)),
]


@pytest.fixture(scope="module")
def split(setup):
  """An original stacked group trained on per-model halves, and per-model forget sets."""
  subsets, _ = shadows.random_subsets(4, POOL, seed=0)
  subsets = subsets[:N]
  state = _fresh(setup, 3 * (len(subsets[0]) // 32))
  state = fit(state, setup["x"], setup["y"], key=setup["keys"], epochs=3, batch_size=32,
              subsets=subsets)
  forget, retain = shadows.per_model_forget_sets(subsets, size=24, seed=5)
  data = UnlearnData(retain_x=setup["x"], retain_y=setup["y"], forget_x=setup["x"],
                     forget_y=setup["y"], num_classes=10, model=setup["model"],
                     image_shape=setup["image_shape"], model_axis="unrolled",
                     retain_index=jnp.asarray(retain), forget_index=jnp.asarray(forget))
  return state, data


@pytest.mark.parametrize("name,extra", VARIANTS,
                         ids=[m + "".join(f"-{k}={v}" for k, v in e.items())
                              for m, e in VARIANTS])
def test_method_with_per_model_forget_sets_equals_separate_runs(setup, split, name, extra):
  state, data = split
  cfg = {**OVERRIDES[name], **extra}
  keys = jnp.stack([jax.random.PRNGKey(100 + k) for k in range(N)])
  res = run_method(name, state, data, cfg, keys)
  assert res.diverged.shape == (N,) and not res.diverged.any()
  for k in range(N):
    one = run_method(name, unstack(state, k), data.model_split(k), cfg, keys[k])
    _close(unstack(res.state, k).params, one.state.params, 2e-5)
    _close(unstack(res.state, k).model_state, one.state.model_state, 2e-5)
    assert res.cost["example_gradients"] == one.cost["example_gradients"]


def test_split_rows_are_each_models_own(split):
  _, data = split
  assert data.per_model and data.num_split_models == N
  assert data.num_forget == 24 and data.num_retain == data.retain_index.shape[1]
  fx, fy = data.forget.arrays()
  assert fx.shape[:2] == (N, 24)
  np.testing.assert_array_equal(np.asarray(fy[1]), np.asarray(data.forget_y)[
      np.asarray(data.forget_index[1])])
  train = data.train
  assert train.index.shape == (N, data.num_retain + 24)
  np.testing.assert_array_equal(np.asarray(train.index[2, -24:]), np.asarray(data.forget_index[2]))
  with pytest.raises(ValueError, match="per-model split"):
    data.train_x  # noqa: B018  the shared-split property refuses per-model data


def test_per_model_split_needs_one_row_per_model(setup, split):
  state, data = split
  two = stack([unstack(state, 0), unstack(state, 1)])
  keys = jnp.stack([jax.random.PRNGKey(0), jax.random.PRNGKey(1)])
  with pytest.raises(MethodConfigError, match="3 rows of indices but the state has 2"):
    run_method("finetune", two, data, OVERRIDES["finetune"], keys)
  with pytest.raises(MethodConfigError, match="single"):
    run_method("finetune", unstack(state, 0), data, OVERRIDES["finetune"], keys[0])
  assert base.check_split(data.model_split(0), unstack(state, 0)) is None
  assert train_step is not None


def test_fit_in_model_chunks_equals_all_at_once(setup):
  """`model_chunk`: the models of a stacked state trained c at a time within each epoch give
  the same models (they are independent), for a chunk that divides N and one that does not."""
  subsets, _ = shadows.random_subsets(4, POOL, seed=2)
  subsets = subsets[:N]
  state = _fresh(setup, 2 * (len(subsets[0]) // 32))
  kw = dict(key=setup["keys"], epochs=2, batch_size=32, model_axis="vmap", subsets=subsets)
  whole = fit(state, setup["x"], setup["y"], **kw)
  for chunk in (1, 2):
    _close(fit(state, setup["x"], setup["y"], **kw, model_chunk=chunk).params, whole.params, 1e-5)
