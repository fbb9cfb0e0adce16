"""Single-gradient unlearning: add back the forget set's first-order contribution to training.

Thudi, Deza, Chandrasekaran, Papernot, "Unrolling SGD: Understanding Factors Influencing Machine
Unlearning", EuroS&P 2022 (arXiv 2109.13398), `20-unroll.md` §3. Unrolling SGD to first order
around the weights w_0 the training started from, every visit of a forget batch subtracted about
η · ∇L̄(w_0; batch); adding them back cancels that first-order term (what remains is measured by
the verification / unlearning error, `unlearn_jax.unroll`). The update, `form="fixed"` (default):

  w_U = w_t + n · η · (|D_f| / B) · ∇_w L̄(w_0; D_f)  [· 1 / (1 - μ) if `momentum` = μ > 0]

- L̄ the mean cross-entropy over D_f at the *initial* weights w_0 (`reference="initial"`: pass
  them as `unlearn(..., reference_state=w0)`; the main job passes the original group's
  initialization), one gradient, which can be cached;
- the gradient taken with the model in **train** mode (BatchNorm batch statistics), as SGD saw
  it: D_f in consecutive chunks of `train_batch_size` B, each chunk's mean-loss gradient weighted
  by its size (exact for the public code's case, B* one training batch);
- n the number of times D_f was visited (epochs), η the (mean) learning rate of that training
  (0.05 for cosine from 0.1 to 0), and |D_f| / B the number of batches D_f spans per epoch: in
  the public code B* is one batch, so the factor is 1 there; an IID forget set of our main job
  spans about |D_f| / B batches, each of which subtracted η · ∇L̄ once per epoch;
- `momentum` μ (default 0, the paper's form): optionally scale by 1 / (1 - μ), the long-run
  first-order effect of one gradient under heavy-ball momentum (not in the paper; the unroll
  study measures both, `docs/results/unroll_sgd/`).

`form="old"` keeps this library's earlier form, w_t + n · η · ∇L̄(w_ref; D_f) with the gradient
in inference mode (running statistics) and no |D_f| / B factor; `reference="trained"` takes
w_ref = θ* (the gradient at the trained weights, a cheap baseline of later benchmarks) with either
form. A mask (`10-del.md` §6) restricts the update to masked elements (others stay
bit-identical). Cost: one gradient per forget example; `epochs` is recorded as 0.

Measured on the main job's default (MNIST-1D, MLP 256x256, 40 epochs, batch 64, 360 iid forget
examples, 4 seeds; fixed form, n = 40, reference "initial"): η = 0.05 (the mean lr, so a scale of
40 · 0.05 · 360/64 = 11.25) sends every model to chance (test 10.8 %); η = 0.01 gives forget
76.7 %, test 46.7 %; η = 0.005 forget 98.8 %, test 64.5 %; η = 0.002 leaves the model as it was
(forget 100 %, test 69.4 %). Forty epochs from the initialization are far outside the first-order
expansion's reach, so η must be tuned (or the unroll's one-batch setting used).

On digits (CNN width 0.5 trained 12-15 epochs, 10 % iid forget set, old form, reference
"trained") n · η = 1.2 lowered forget accuracy from 100 % to 94-100 % per seed with retain >= 99 %;
n · η = 3 gave forget 80-86 %, retain 87-92 %; n · η >= 10 destroyed the model.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from unlearn_jax import masking
from unlearn_jax.methods import base, common
from unlearn_jax.train import TrainState, cross_entropy, num_models, over_models, resolve_model_axis

USES_FORGET = True
REFERENCES = ("initial", "trained")
FORMS = ("fixed", "old")
DEFAULTS = dict(
    learning_rate=0.05,      # η: the (mean) lr of the original training (cosine 0.1 -> 0: 0.05)
    visits=12,               # n: epochs of the original training (each visited D_f once)
    form="fixed",            # fixed: |D_f|/B scale, train-mode gradient | old: neither
    train_batch_size=64,     # B of the original training (fixed form: scale and chunks)
    momentum=0.0,            # μ > 0: also scale by 1/(1-μ) (fixed form; 0 = the paper's form)
    reference="initial",     # w_0: initial (pass reference_state=...) | trained (θ*)
    batch_size=64,           # chunk size of the old form's inference-mode pass (result
                             # independent of it)
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


def update_scale(cfg, num_forget: int) -> float:
  """The factor of ∇L̄ in the update: n · η · (|D_f| / B) / (1 - μ) (fixed) or n · η (old)."""
  scale = float(cfg["learning_rate"]) * float(cfg["visits"])
  if cfg["form"] == "fixed":
    scale *= num_forget / float(cfg["train_batch_size"]) / (1.0 - float(cfg["momentum"]))
  return scale


def mean_loss_gradient(params, model_state, apply_fn, x, y, *, batch_size: int = 64,
                       stacked: bool = False, model_axis: str = "auto", index=None):
  """∇_θ of the mean cross-entropy over all of (x, y), model in inference mode (computed in
  chunks of `batch_size`; the result does not depend on it beyond rounding). `index`
  (`[N, n]`): model k's own rows `index[k]`."""
  total = common.float32_zeros(params)
  n = 0
  for g, m in common.chunk_gradients(params, model_state, apply_fn, x, y, batch_size=batch_size,
                                     stacked=stacked, model_axis=model_axis, index=index):
    total = _add(total, g)
    n += m
  return common.scale_tree(total, jnp.float32(1.0 / n))


@functools.lru_cache(maxsize=None)
def _compiled_train_grad(apply_fn, stacked: bool, model_axis: str, per_model_rows: bool = False):
  """∇θ of the mean CE of one batch in *train* mode (batch statistics; running stats unused)."""

  def one(params, model_state, x, y):
    loss = lambda p: cross_entropy(apply_fn(p, model_state, x, True)[0], y)
    return jax.tree_util.tree_map(lambda g: g.astype(jnp.float32), jax.grad(loss)(params))

  data_axis = 0 if per_model_rows else None
  return jax.jit(over_models(one, model_axis, in_axes=(0, 0, data_axis, data_axis)) if stacked
                 else one)


def train_mode_gradient(params, model_state, apply_fn, x, y, *, batch_size: int,
                        stacked: bool = False, model_axis: str = "auto", index=None):
  """∇_θ L̄ over (x, y) as SGD saw it: consecutive chunks of `batch_size` (the training batch
  size) in train mode, each chunk's mean-loss gradient weighted by its share of the examples
  (Σ_c (m_c / n) ∇L̄_c). With BatchNorm the result depends on the chunking; for one batch it is
  exactly the gradient of that SGD step. `index` (`[N, n]`): model k's own rows `index[k]`."""
  n = int(jnp.shape(x)[0]) if index is None else int(index.shape[-1])
  fn = _compiled_train_grad(apply_fn, stacked, resolve_model_axis(model_axis), index is not None)
  total = common.float32_zeros(params)
  for xb, yb, _, m in common.row_chunks(x, y, batch_size, index, pad=False):
    g = fn(params, model_state, xb, yb)
    total = _add(total, common.scale_tree(g, jnp.float32(m / n)))
  return total


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
  base.require("single_gradient", cfg["form"] in FORMS,
               f"form must be one of {FORMS}, got {cfg['form']!r}")
  for key in ("batch_size", "train_batch_size"):
    base.require("single_gradient", common.is_int(cfg[key]) and cfg[key] >= 1,
                 f"{key} must be an integer >= 1, got {cfg[key]}")
  base.require("single_gradient", common.is_real(cfg["momentum"]) and 0 <= cfg["momentum"] < 1,
               f"momentum must be in [0, 1), got {cfg['momentum']}")
  if data is not None:
    common.check_forget("single_gradient", data)


def unlearn(state, data: base.UnlearnData, cfg, key, mask=None, *,
            reference_state: TrainState | None = None) -> base.UnlearnResult:
  """See the module docstring; `reference_state` (same stacking as `state`) is w_0 when
  `cfg["reference"] == "initial"`."""
  del key  # deterministic
  check_config(cfg, data)
  base.check_split(data, state)
  nf = data.num_forget
  if cfg["reference"] == "initial":
    base.require("single_gradient", reference_state is not None,
                 "reference='initial' needs the initial weights w_0: call "
                 "single_gradient.unlearn(..., reference_state=w0_state) (the unlearning "
                 "pipeline passes the original group's initialization), or set "
                 "reference='trained'")
    base.require("single_gradient", num_models(reference_state) == num_models(state),
                 "reference_state must have the same model axis as state")
    ref = reference_state
  else:
    base.require("single_gradient", reference_state is None,
                 "reference_state is given but reference='trained'; set reference='initial'")
    ref = state
  with base.Timer() as timer:
    stacked = base.is_stacked(state)
    if cfg["form"] == "fixed":
      grad = train_mode_gradient(ref.params, ref.model_state, state.apply_fn, data.forget_x,
                                 data.forget_y, batch_size=int(cfg["train_batch_size"]),
                                 stacked=stacked, model_axis=data.model_axis,
                                 index=data.forget_index)
    else:
      grad = mean_loss_gradient(ref.params, ref.model_state, state.apply_fn, data.forget_x,
                                data.forget_y, batch_size=int(cfg["batch_size"]),
                                stacked=stacked, model_axis=data.model_axis,
                                index=data.forget_index)
    scale = update_scale(cfg, nf)
    update = _compiled_update(scale, 1.0, stacked, base.mask_axis(mask, state))
    params = update(state.params, grad, mask)
    new_state = state.replace(params=params)
  return base.result(new_state, timer, example_gradients=nf, epochs=0,
                     info={"scale": scale, "reference": cfg["reference"], "form": cfg["form"]})
