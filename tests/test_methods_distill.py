"""Tests of scrub, bad_teacher, ssd and single_gradient on digits (CNN width 0.5, 2 seeds).

One original group of 2 seeds is trained per module and one `Model` object is reused so that
compiled functions are cached across tests. Seeds are mapped with `model_axis="vmap"` throughout:
on XLA:CPU a vmapped step compiles about twice as fast as the unrolled one (`auto`), and compile
time dominates these small runs.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from unlearn_jax import masking
from unlearn_jax.data import iid
from unlearn_jax.methods import MethodConfigError, get_method, run_method
from unlearn_jax.methods import base, common, single_gradient, ssd
from unlearn_jax.models import build_model
from unlearn_jax.train import (TrainState, create_train_state, evaluate, fit, make_optimizer,
                               unstack)

METHODS = ("scrub", "bad_teacher", "ssd", "single_gradient")
SEEDS = (0, 1)
AXIS = "vmap"
UNLEARN_KEYS = ((10,), (11,))
# Per-method overrides for the digits test (None: the module DEFAULTS). SSD's reference a = 10
# selects (almost) nothing for a 10 % iid forget set of digits, whose forget importances are
# close to the whole set's; a = 6, λ = 1.5 dampens about 1-4 % of the parameters.
# single_gradient: its old form (inference-mode gradient at θ*, no |D_f|/B factor); the fixed
# form is tested in tests/test_single_gradient.py.
TEST_CONFIGS = {"scrub": None, "bad_teacher": None,
                "single_gradient": dict(form="old", reference="trained", learning_rate=0.1),
                "ssd": dict(selection=6.0, dampening=1.5)}


@pytest.fixture(scope="module")
def setup(digits):
  model = build_model("cnn", 10, width=0.5)
  n = len(digits.train)
  f = iid(n, seed=0, fraction=0.1)
  r = np.setdiff1d(np.arange(n), f)
  x, y = jnp.asarray(digits.train.x), jnp.asarray(digits.train.y)
  keys = jnp.stack([jax.random.PRNGKey(s) for s in SEEDS])
  epochs, bs = 12, 64
  tx = make_optimizer(learning_rate=0.1, total_steps=epochs * (n // bs), weight_decay=5e-4)
  state = create_train_state(model, tx, keys, digits.image_shape)
  state = fit(state, x, y, key=keys, epochs=epochs, batch_size=bs, model_axis=AXIS)
  data = base.UnlearnData(retain_x=x[r], retain_y=y[r], forget_x=x[f], forget_y=y[f],
                          num_classes=10, model=model, image_shape=digits.image_shape,
                          model_axis=AXIS)
  test = (jnp.asarray(digits.test.x), jnp.asarray(digits.test.y))
  return dict(model=model, state=state, data=data, test=test)


def _keys():
  return jnp.stack([jax.random.PRNGKey(k[0]) for k in UNLEARN_KEYS])


def _acc(state, x, y):
  return np.asarray(evaluate(state, x, y, model_axis=AXIS)["accuracy"])


def _accuracies(state, setup):
  d = setup["data"]
  return dict(forget=_acc(state, d.forget_x, d.forget_y),
              retain=_acc(state, d.retain_x, d.retain_y), test=_acc(state, *setup["test"]))


_RESULTS = {}


def _result(name, setup):
  """Each method's stacked run, computed once per module."""
  if name not in _RESULTS:
    _RESULTS[name] = run_method(name, setup["state"], setup["data"], TEST_CONFIGS[name], _keys())
  return _RESULTS[name]


def _leaves_close(a, b, **kw):
  for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
    np.testing.assert_allclose(np.asarray(u), np.asarray(v), **kw)


# --------------------------------------------------------------------------------------------
# Every method on a stacked state of 2 seeds
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", METHODS)
def test_method_forgets_keeps_retain_and_records_cost(name, setup):
  original = _accuracies(setup["state"], setup)
  assert original["forget"].mean() >= 0.99
  res = _result(name, setup)
  acc = _accuracies(res.state, setup)
  print(f"\n{name}: original {original}\n{name}: unlearned {acc}\ncost {res.cost} {res.info}")
  assert np.shape(res.diverged) == (2,) and not res.diverged.any()
  assert acc["forget"].mean() < original["forget"].mean()
  assert (acc["retain"] >= 0.95).all(), acc
  assert (acc["test"] >= original["test"] - 0.08).all(), acc
  assert res.cost["wall_s"] > 0 and res.cost["example_gradients"] > 0
  assert res.cost["epochs"] == (0 if name in ("ssd", "single_gradient") else
                                get_method(name).DEFAULTS["epochs"])
  module = get_method(name)
  assert module.USES_FORGET is True
  assert res.state.params["classifier"]["kernel"].shape[0] == 2
  # the original state is untouched (buffers are copied before donation)
  assert np.isfinite(np.asarray(setup["state"].params["classifier"]["kernel"])).all()


def test_scrub_vmapped_seeds_equal_sequential_runs(setup):
  stacked = _result("scrub", setup).state
  keys = _keys()
  for i in range(2):
    single = run_method("scrub", unstack(setup["state"], i), setup["data"], None, keys[i]).state
    _leaves_close(unstack(stacked, i).params, single.params, atol=1e-4, rtol=0)
    _leaves_close(unstack(stacked, i).model_state, single.model_state, atol=1e-4, rtol=0)


# --------------------------------------------------------------------------------------------
# scrub / bad_teacher: the divergence
# --------------------------------------------------------------------------------------------


def _np_kl(s, t, temp):
  def softmax(z):
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)
  ps, pt = softmax(s / temp), softmax(t / temp)
  return np.sum(pt * (np.log(pt) - np.log(ps)), axis=-1)  # per example, KL(pt || ps)


def test_scrub_kl_matches_numpy():
  rng = np.random.default_rng(0)
  s = rng.normal(size=(5, 4)) * 3
  t = rng.normal(size=(5, 4)) * 3
  for temp in (1.0, 4.0):
    per_example = _np_kl(s, t, temp)
    got = common.kl_divergence(jnp.asarray(s, jnp.float32), jnp.asarray(t, jnp.float32), temp)
    np.testing.assert_allclose(got, temp ** 2 * per_example.mean(), rtol=1e-5)
    got = common.kl_divergence(jnp.asarray(s, jnp.float32), jnp.asarray(t, jnp.float32), temp,
                               reduction="mean")
    np.testing.assert_allclose(got, per_example.sum() / s.size, rtol=1e-5)
  same = common.kl_divergence(jnp.asarray(s), jnp.asarray(s), 4.0)
  assert float(same) == pytest.approx(0, abs=1e-6)
  # KL(teacher || student), not the reverse
  rev = _np_kl(t, s, 2.0).mean() * 4
  assert not np.isclose(float(common.kl_divergence(jnp.asarray(s), jnp.asarray(t), 2.0)), rev)


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_distill_optimizer_respects_mask_and_is_cached(kind):
  """The optimizer the distillation methods build: masked elements stay bit-identical; equal
  configs give the same object (so compiled steps are reused)."""
  rng = np.random.default_rng(2)
  state = _linear_state(jnp.asarray(rng.normal(size=(3, 4)), jnp.float32),
                        jnp.asarray(rng.normal(size=(4,)), jnp.float32))
  cfg = dict(optimizer=kind, learning_rate=0.1, momentum=0.9, weight_decay=5e-4,
             schedule="constant")
  mask = {"w": jnp.asarray(rng.random((3, 4)) < 0.5), "b": jnp.zeros((4,), bool)}
  tx = base.optimizer(cfg, 10, mask)
  assert tx is base.optimizer(dict(cfg), 99, mask)  # constant: total_steps irrelevant
  assert tx is not base.optimizer(cfg, 10)  # unmasked: another object
  st = base.with_optimizer(state, tx, mask)
  grads = jax.tree_util.tree_map(jnp.ones_like, st.params)
  updates, _ = st.tx.update(grads, st.opt_state, st.params)
  new = optax.apply_updates(st.params, updates)
  m = np.asarray(mask["w"])
  assert np.asarray(new["w"])[~m].tobytes() == np.asarray(state.params["w"])[~m].tobytes()
  assert (np.asarray(new["w"])[m] != np.asarray(state.params["w"])[m]).all()
  assert np.asarray(new["b"]).tobytes() == np.asarray(state.params["b"]).tobytes()


# --------------------------------------------------------------------------------------------
# ssd
# --------------------------------------------------------------------------------------------


def test_ssd_dampening_by_hand():
  params = {"a": jnp.array([1.0, -2.0, 3.0, 4.0]), "b": {"k": jnp.array([[5.0, -6.0]])}}
  i_all = {"a": jnp.array([1.0, 1.0, 0.0, 2.0]), "b": {"k": jnp.array([[1.0, 0.5]])}}
  i_f = {"a": jnp.array([10.0, 20.0, 1.0, 4.0]), "b": {"k": jnp.array([[30.0, 5.0]])}}
  new, sel = ssd.dampen(params, i_all, i_f, selection=5.0, dampening=2.0)
  # selected where I_f > a I_D (a = 5): a: 10 > 5, 20 > 5, 1 > 0, not 4 > 10; b: 30 > 5, 5 > 2.5
  expected_sel = {"a": np.array([True, True, True, False]), "b": {"k": np.array([[True, True]])}}
  _leaves_close(sel, expected_sel, atol=0)
  # factor min(1, 2 I_D / I_f): a: 0.2, 0.1, 0 ; b: 1/15, min(1, 0.2)
  expected = {"a": np.array([1.0 * 0.2, -2.0 * 0.1, 0.0, 4.0]),
              "b": {"k": np.array([[5.0 / 15.0, -6.0 * 0.2]])}}
  _leaves_close(new, expected, rtol=1e-6, atol=0)
  # the factor is capped at 1 (a large λ never grows a parameter); I_D = 0 gives factor 0
  new, sel = ssd.dampen(params, i_all, i_f, selection=1.0, dampening=1000.0)
  _leaves_close(new, {"a": np.array([1.0, -2.0, 0.0, 4.0]), "b": params["b"]}, atol=0)
  # unselected elements are bit-identical, including values that a multiply would perturb
  odd = {"a": jnp.array([np.nan, 1e-45, -0.0, 3.3]), "b": {"k": jnp.array([[np.inf, 7.0]])}}
  new, sel = ssd.dampen(odd, i_all, jax.tree_util.tree_map(jnp.zeros_like, i_f),
                        selection=1.0, dampening=1.0)
  assert not any(np.asarray(s).any() for s in jax.tree_util.tree_leaves(sel))
  for u, v in zip(jax.tree_util.tree_leaves(new), jax.tree_util.tree_leaves(odd)):
    assert np.asarray(u).tobytes() == np.asarray(v).tobytes()
  # a mask confines the selection
  mask = {"a": jnp.array([False, True, False, True]), "b": {"k": jnp.array([[False, False]])}}
  new, sel = ssd.dampen(params, i_all, i_f, selection=5.0, dampening=2.0, mask=mask)
  _leaves_close(sel, {"a": np.array([False, True, False, False]),
                      "b": {"k": np.array([[False, False]])}}, atol=0)
  _leaves_close(new, {"a": np.array([1.0, -0.2, 3.0, 4.0]), "b": {"k": np.array([[5.0, -6.0]])}},
                atol=0)


def _linear_apply(p, ms, x, train):
  del train
  return x @ p["w"] + p["b"], ms


def _linear_state(w, b):
  apply = _linear_apply
  return TrainState(step=jnp.zeros((), jnp.int32), params={"w": w, "b": b}, model_state={},
                    opt_state=(), apply_fn=apply, tx=optax.identity())


def test_ssd_importance_is_mean_squared_batch_gradient():
  rng = np.random.default_rng(1)
  w = jnp.asarray(rng.normal(size=(3, 4)), jnp.float32)
  b = jnp.asarray(rng.normal(size=(4,)), jnp.float32)
  x = jnp.asarray(rng.normal(size=(10, 3)), jnp.float32)
  y = jnp.asarray(rng.integers(0, 4, size=10))
  state = _linear_state(w, b)
  got = ssd.importance(state, x, y, batch_size=4)

  grads = [_mean_ce_grad(state.apply_fn, state.params, {}, x[lo:hi], y[lo:hi])
           for lo, hi in ((0, 4), (4, 8), (8, 10))]  # the last batch is partial
  want = jax.tree_util.tree_map(lambda *g: sum(np.square(np.asarray(a)) for a in g) / 3, *grads)
  _leaves_close(got, want, rtol=1e-5, atol=1e-8)


def test_ssd_respects_mask(setup):
  state, data = setup["state"], setup["data"]
  # only the classifier may be dampened (one mask shared by both seeds)
  mask = masking.always_trainable(masking.full_mask(unstack(state, 0).params, False),
                                  masking.path_contains("classifier"))
  res = run_method("ssd", state, data, TEST_CONFIGS["ssd"], _keys(), mask=mask)
  full = _result("ssd", setup)
  flat = jax.tree_util.tree_flatten_with_path(res.state.params)[0]
  changed_classifier = False
  for (path, new), old, free in zip(flat, jax.tree_util.tree_leaves(state.params),
                                    jax.tree_util.tree_leaves(full.state.params)):
    name = masking.keypath_str(path)
    if "classifier" in name:  # element-wise rule: same as the unmasked run there
      np.testing.assert_array_equal(np.asarray(new), np.asarray(free))
      changed_classifier |= bool((np.asarray(new) != np.asarray(old)).any())
    else:
      assert np.asarray(new).tobytes() == np.asarray(old).tobytes(), name
  assert res.cost["example_gradients"] == len(data.train_x) + len(data.forget_x)


# --------------------------------------------------------------------------------------------
# single_gradient
# --------------------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnums=0)
def _mean_ce_grad(apply_fn, params, model_state, x, y):
  """Direct reference: jax.grad of the mean CE over all of (x, y), inference mode."""
  def loss(p):
    logits, _ = apply_fn(p, model_state, x, False)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
  return jax.grad(loss)(params)


def _direct_forget_grad(model, state, x, y):
  return _mean_ce_grad(model.apply, state.params, state.model_state, x, y)


def test_single_gradient_equals_theta_plus_n_eta_grad(setup):
  state, data, model = setup["state"], setup["data"], setup["model"]
  res = _result("single_gradient", setup)
  cfg = {**single_gradient.DEFAULTS, **TEST_CONFIGS["single_gradient"]}
  scale = cfg["learning_rate"] * cfg["visits"]
  for i in range(2):
    one = unstack(state, i)
    g = _direct_forget_grad(model, one, data.forget_x, data.forget_y)
    want = jax.tree_util.tree_map(lambda p, gi: p + scale * gi, one.params, g)
    _leaves_close(unstack(res.state, i).params, want, rtol=1e-5, atol=1e-6)
    _leaves_close(unstack(res.state, i).model_state, one.model_state, atol=0)
  assert res.cost["example_gradients"] == len(data.forget_x)
  # the pure kernel
  p = {"w": jnp.array([1.0, 2.0])}
  out = single_gradient.single_gradient_update(p, {"w": jnp.array([0.5, -1.0])}, 0.1, 3)
  np.testing.assert_allclose(out["w"], [1.15, 1.7], rtol=1e-6)


def test_single_gradient_mask_and_initial_reference(setup):
  state, data, model = setup["state"], setup["data"], setup["model"]
  rng = np.random.default_rng(0)
  # a per-model element-wise random mask
  mask = jax.tree_util.tree_map(lambda a: jnp.asarray(rng.random(a.shape) < 0.5), state.params)
  init = create_train_state(model, optax.identity(), _keys(), data.image_shape)
  res = single_gradient.unlearn(state, data, {**single_gradient.DEFAULTS, "visits": 15,
                                              "learning_rate": 0.1, "form": "old",
                                              "reference": "initial"}, _keys(), mask=mask,
                                reference_state=init)
  for i in range(2):
    g = _direct_forget_grad(model, unstack(init, i), data.forget_x, data.forget_y)
    one = unstack(state, i).params
    want = jax.tree_util.tree_map(lambda p, gi: p + 0.1 * 15 * gi, one, g)
    for new, old, w, m in zip(*(jax.tree_util.tree_leaves(t) for t in (
        unstack(res.state, i).params, one, want, jax.tree_util.tree_map(lambda a: a[i], mask)))):
      new, old, w, m = map(np.asarray, (new, old, w, m))
      assert new[~m].tobytes() == old[~m].tobytes()
      np.testing.assert_allclose(new[m], w[m], rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------
# Configuration errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,cfg,match", [
    ("scrub", dict(temperature=0.0), "temperature must be > 0"),
    ("scrub", dict(alpha=0.0), "alpha must be > 0"),
    ("scrub", dict(epochs=0), "epochs must be an integer >= 1"),
    ("scrub", dict(max_steps=-1), "max_steps"),
    ("scrub", dict(forget_batch_size=100000), "forget_batch_size must be an integer in"),
    ("scrub", dict(schedule="step"), "schedule"),
    ("bad_teacher", dict(temperature=-1.0), "temperature must be > 0"),
    ("bad_teacher", dict(epochs=0), "epochs must be an integer >= 1"),
    ("bad_teacher", dict(optimizer="rmsprop"), "optimizer must be"),
    ("bad_teacher", dict(retain_fraction=0.0), "retain_fraction"),
    ("bad_teacher", dict(learning_rate=0.0), "learning_rate must be > 0"),
    ("bad_teacher", dict(batch_size=100000), "batch_size must be an integer in"),
    ("bad_teacher", dict(reduction="sum"), "reduction must be one of"),
    ("ssd", dict(selection=0.0), "selection"),
    ("ssd", dict(dampening=-1.0), "dampening"),
    ("ssd", dict(batch_size=0), "batch_size"),
    ("single_gradient", dict(visits=0), "visits must be > 0"),
    ("single_gradient", dict(learning_rate=-0.1), "learning_rate must be > 0"),
    ("single_gradient", dict(reference="final"), "reference must be one of"),
    ("single_gradient", dict(reference="initial"), "needs the initial weights"),
    ("scrub", dict(tau=1.0), "has no hyperparameter"),
])
def test_bad_configs_raise(name, cfg, match, setup):
  with pytest.raises(MethodConfigError, match=f"'{name}'.*{match}"):
    run_method(name, setup["state"], setup["data"], cfg, _keys())
