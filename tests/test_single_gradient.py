"""The fixed single-gradient unlearning (`20-unroll.md` §3): |D_f|/B scale, train-mode gradient at
the initial weights w_0. (Its old form is tested in tests/test_methods_distill.py.)

A small BatchNorm MLP on digits, so train and inference mode differ.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from unlearn_jax import train as T
from unlearn_jax.methods import MethodConfigError, run_method, single_gradient
from unlearn_jax.methods.base import UnlearnData
from unlearn_jax.models import build_model
from unlearn_jax.unroll import verification_error

B = 16


@pytest.fixture(scope="module")
def setup(digits):
  model = build_model("mlp", 10, width=0.125, norm="batch")
  x, y = jnp.asarray(digits.train.x[:200]), jnp.asarray(digits.train.y[:200])
  tx = optax.sgd(0.2)
  w0 = T.create_train_state(model, tx, jax.random.PRNGKey(0), digits.image_shape)
  return dict(model=model, x=x, y=y, w0=w0, image_shape=digits.image_shape)


def _data(setup, forget):
  keep = np.setdiff1d(np.arange(len(setup["x"])), forget)
  return UnlearnData(retain_x=setup["x"][keep], retain_y=setup["y"][keep],
                     forget_x=setup["x"][forget], forget_y=setup["y"][forget], num_classes=10,
                     model=setup["model"], image_shape=setup["image_shape"], model_axis="vmap")


def _train_grad(model, state, x, y):
  """Reference: jax.grad of the batch's mean CE, model in train mode."""
  def loss(p):
    logits, _ = model.apply(p, state.model_state, x, True)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
  return jax.grad(loss)(state.params)


def test_one_plain_sgd_step_is_undone_exactly(setup):
  """B* = D_f is one batch; one plain-SGD step on it (train mode) from w_0; the retrained model
  never saw it, so it is w_0. Fixed single-gradient unlearning (n = 1, η, |D_f|/B = 1) returns
  w_0 to float precision; the old form (inference-mode gradient) does not."""
  w0, forget = setup["w0"], np.arange(B)
  data = _data(setup, forget)
  step = jax.jit(T.make_train_step())
  m, _ = step(w0, {"x": data.forget_x, "y": data.forget_y})
  gap = float(verification_error(m.params, w0.params))
  assert gap > 1e-2
  cfg = dict(learning_rate=0.2, visits=1, train_batch_size=B, reference="initial")
  res = single_gradient.unlearn(m, data, {**single_gradient.DEFAULTS, **cfg}, None,
                                reference_state=w0)
  assert res.info["scale"] == pytest.approx(0.2) and res.info["form"] == "fixed"
  assert float(verification_error(res.state.params, w0.params)) < 1e-6 * gap
  old = single_gradient.unlearn(m, data, {**single_gradient.DEFAULTS, **cfg, "form": "old"},
                                None, reference_state=w0)
  assert float(verification_error(old.state.params, w0.params)) > 1e-3 * gap
  # BatchNorm statistics are not parameters: left as M's
  for a, b in zip(jax.tree_util.tree_leaves(res.state.model_state),
                  jax.tree_util.tree_leaves(m.model_state)):
    assert np.asarray(a).tobytes() == np.asarray(b).tobytes()


def test_fixed_form_scale_and_train_mode_chunks(setup):
  """|D_f| = 40 spans 40/16 = 2.5 batches: w_U = θ + n·η·(|D_f|/B)·Σ_c (m_c/|D_f|)∇L̄_c(w_0),
  chunks of B in train mode (16, 16, 8); for 2 stacked seeds."""
  model, x, y = setup["model"], setup["x"], setup["y"]
  forget = np.arange(100, 140)
  data = _data(setup, forget)
  keys = jnp.stack([jax.random.PRNGKey(1), jax.random.PRNGKey(2)])
  w0 = T.create_train_state(model, optax.sgd(0.1), keys, setup["image_shape"])
  theta = T.create_train_state(model, optax.sgd(0.1), keys + 7, setup["image_shape"])
  cfg = dict(learning_rate=0.05, visits=3, train_batch_size=B, momentum=0.5)
  res = single_gradient.unlearn(theta, data, {**single_gradient.DEFAULTS, **cfg}, None,
                                reference_state=w0)
  scale = 0.05 * 3 * (40 / B) / (1 - 0.5)
  assert res.info["scale"] == pytest.approx(scale)
  fx, fy = x[forget], y[forget]
  for i in range(2):
    ref, th = T.unstack(w0, i), T.unstack(theta, i)
    g = None
    for s in range(0, 40, B):
      gc = _train_grad(model, ref, fx[s:s + B], fy[s:s + B])
      w = len(fx[s:s + B]) / 40
      g = jax.tree_util.tree_map(lambda a: w * a, gc) if g is None else \
          jax.tree_util.tree_map(lambda a, b: a + w * b, g, gc)
    want = jax.tree_util.tree_map(lambda p, gi: p + scale * gi, th.params, g)
    for a, b in zip(jax.tree_util.tree_leaves(T.unstack(res.state, i).params),
                    jax.tree_util.tree_leaves(want)):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  # the old form: n·η only, whatever the forget set's size
  old = single_gradient.update_scale({**single_gradient.DEFAULTS, **cfg, "form": "old"}, 40)
  assert old == pytest.approx(0.05 * 3)


@pytest.mark.parametrize("cfg,match", [
    (dict(form="new"), "form must be one of"),
    (dict(train_batch_size=0), "train_batch_size must be an integer >= 1"),
    (dict(momentum=1.0), r"momentum must be in \[0, 1\)"),
    (dict(), "needs the initial weights"),  # default reference="initial", none passed
])
def test_fixed_form_config_errors(setup, cfg, match):
  with pytest.raises(MethodConfigError, match=f"'single_gradient'.*{match}"):
    run_method("single_gradient", setup["w0"], _data(setup, np.arange(B)), cfg, None)
