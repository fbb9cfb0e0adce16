"""Single-gradient unlearning: add back the forget set's first-order contribution to training.

Thudi, Deza, Chandrasekaran, Papernot, "Unrolling SGD: Understanding Factors Influencing Machine
Unlearning", EuroS&P 2022 (arXiv 2109.13398), `20-unroll.md` §3:

  w_U = w_t + n · η · ∇_w L̄(w_0; D_f),

with L̄ the mean cross-entropy over the forget examples evaluated at the *reference* weights w_0
(one gradient, which can be cached), η the training learning rate and n the number of times the
forget examples were visited (epochs). Unrolling SGD to first order, each visit of a forget batch
subtracted about η · ∇L̄(w_0); adding n of them back cancels that first-order term (what remains
is measured by the verification / unlearning error, `20-unroll.md` §4).

In the paper w_0 is the *initial* weights of the training run. This library's unlearning methods
receive only the trained state θ*, so the default `reference="trained"` uses w_0 = θ* (the
gradient at the trained weights, the form used as a cheap baseline in later benchmarks);
`reference="initial"` uses weights the caller passes as `unlearn(..., reference_state=w0)` (e.g.
the initial state of the original training, which the unroll study keeps). `n · η` is
`visits * learning_rate`; with a decaying schedule pass the mean learning rate over training
(0.05 for cosine from 0.1 to 0). Defaults: learning_rate 0.1 and visits 12, the mnist5k / `retrain`
recipe (digits trains 15 epochs: set visits=15 there). The model runs in inference mode for the
gradient (BatchNorm running statistics of w_0). A mask (`10-del.md` §6) restricts the update to
masked elements (others stay bit-identical). Cost: one gradient per forget example; `epochs` is
recorded as 0 (no training epochs).

On digits (CNN width 0.5 trained 12-15 epochs, 10 % iid forget set, reference="trained") the
defaults (n · η = 1.2) lower forget accuracy from 100 % to 94-100 % per seed with retain >= 99 %;
n · η = 3 gives forget 80-86 %, retain 87-92 %; n · η >= 10 destroys the model.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from unlearn_jax import masking
from unlearn_jax.methods import base, common
from unlearn_jax.train import TrainState, num_models

USES_FORGET = True
REFERENCES = ("trained", "initial")
DEFAULTS = dict(
    learning_rate=0.1,       # η of the original training (mean lr for a decaying schedule)
    visits=12,               # n: epochs of the original training (each visited D_f once)
    reference="trained",     # w_0: trained (θ*) | initial (pass reference_state=...)
    batch_size=64,           # chunk size of the gradient pass (result independent of it)
)


def single_gradient_update(params, grad, lr: float, visits: float, mask=None):
  """θ + visits · lr · grad, element-wise; where `mask` is False / 0 the parameter is returned
  bit-identical (`jnp.where`). A pure function (reused by the unroll study)."""
  scale = lr * visits

  def one(p, g, m=None):
    new = p + jnp.asarray(scale, p.dtype) * g.astype(p.dtype)
    return new if m is None else jnp.where(jnp.asarray(m) != 0, new, p)

  if mask is None:
    return jax.tree_util.tree_map(one, params, grad)
  masking.check_mask(mask, params)
  return jax.tree_util.tree_map(one, params, grad, mask)


def mean_loss_gradient(params, model_state, apply_fn, x, y, *, batch_size: int = 64,
                       stacked: bool = False, model_axis: str = "auto"):
  """∇_θ of the mean cross-entropy over all of (x, y), model in inference mode (computed in
  chunks of `batch_size`; the result does not depend on it beyond rounding)."""
  total = common.float32_zeros(params)
  n = 0
  for g, m in common.chunk_gradients(params, model_state, apply_fn, x, y, batch_size=batch_size,
                                     stacked=stacked, model_axis=model_axis):
    total = _add(total, g)
    n += m
  return common.scale_tree(total, jnp.float32(1.0 / n))


@functools.partial(jax.jit, donate_argnums=(0,))
def _add(a, b):
  return jax.tree_util.tree_map(jnp.add, a, b)


@functools.lru_cache(maxsize=None)
def _compiled_update(lr: float, visits: float, stacked: bool, mask_axis):
  one = lambda p, g, m: single_gradient_update(p, g, lr, visits, mask=m)
  return jax.jit(jax.vmap(one, in_axes=(0, 0, mask_axis)) if stacked else one)


def check_config(cfg, data: base.UnlearnData | None = None) -> None:
  base.require("single_gradient", common.is_real(cfg["learning_rate"]) and cfg["learning_rate"] > 0,
               f"learning_rate must be > 0, got {cfg['learning_rate']}")
  base.require("single_gradient", common.is_real(cfg["visits"]) and cfg["visits"] > 0, f"visits must be > 0, got {cfg['visits']}")
  base.require("single_gradient", cfg["reference"] in REFERENCES,
               f"reference must be one of {REFERENCES}, got {cfg['reference']!r}")
  base.require("single_gradient", int(cfg["batch_size"]) == cfg["batch_size"]
               and cfg["batch_size"] >= 1, f"batch_size must be an integer >= 1, got "
               f"{cfg['batch_size']}")
  if data is not None:
    common.check_forget("single_gradient", data)


def unlearn(state, data: base.UnlearnData, cfg, key, mask=None, *,
            reference_state: TrainState | None = None) -> base.UnlearnResult:
  """See the module docstring; `reference_state` (same stacking as `state`) is w_0 when
  `cfg["reference"] == "initial"`."""
  del key  # deterministic
  check_config(cfg, data)
  nf = len(data.forget_x)
  if cfg["reference"] == "initial":
    base.require("single_gradient", reference_state is not None,
                 "reference='initial' needs the initial weights w_0: call "
                 "single_gradient.unlearn(..., reference_state=w0_state)")
    base.require("single_gradient", num_models(reference_state) == num_models(state),
                 "reference_state must have the same model axis as state")
    ref = reference_state
  else:
    base.require("single_gradient", reference_state is None,
                 "reference_state is given but reference='trained'; set reference='initial'")
    ref = state
  with base.Timer() as timer:
    stacked = base.is_stacked(state)
    grad = mean_loss_gradient(ref.params, ref.model_state, state.apply_fn, data.forget_x,
                              data.forget_y, batch_size=int(cfg["batch_size"]),
                              stacked=stacked, model_axis=data.model_axis)
    update = _compiled_update(float(cfg["learning_rate"]), float(cfg["visits"]), stacked,
                              base.mask_axis(mask, state))
    params = update(state.params, grad, mask)
    new_state = state.replace(params=params)
  return base.result(new_state, timer, example_gradients=nf, epochs=0,
                     info={"scale": float(cfg["learning_rate"]) * float(cfg["visits"]),
                           "reference": cfg["reference"]})

