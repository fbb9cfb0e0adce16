"""Random-Label (RL): relabel the forget set at random and train on D_r ∪ relabeled D_f.

Definition (`40-methods.md`): every forget example (x, y) gets a random label y' and the model
continues training from θ* with cross-entropy on D_r ∪ {(x, y')}. The official DEL code draws
y' uniformly from all classes (it may equal y); our default draws y' uniformly from the
*other* classes, y' = (y + U{1..C-1}) mod C, so every relabeled example really contradicts its
training label (`allow_true_label=True` gives the official variant).

Source: Golatkar et al., "Eternal Sunshine of the Spotless Net", CVPR 2020 (the random-label
baseline); Fan et al., "SalUn", ICLR 2024 (RL as the basis of SalUn); Torkzadehmahani et al.,
arXiv 2412.02432 (DEL, RL as a localized unlearning algorithm).

Procedures (`procedure`):
  `union` (default; DEL's `relabeling`, `unlearn.py`): labels drawn once, one shuffled pass over
      D_r ∪ relabeled D_f per epoch. DEL's run also has allow_true_label=True, a per-epoch cosine
      to 0.5·lr, wd 0, batch 128 and a localization mask (its relabeling is masked RL).
  `forget_then_retain` (SalUn's RL for CIFAR-10/SVHN, OPTML-Group/Unlearn-Saliency
      `Classification/unlearn/RL.py`, since 2024-04): each epoch a pass over D_f whose labels are
      redrawn for every batch (`torch.randint` over all classes: use allow_true_label=True), then
      a pass over D_r with the true labels; a step after every batch of both passes. Redrawing
      per batch equals drawing fresh i.i.d. labels for every forget example in every epoch, which
      is how it is computed here (per model, from `fold_in(label_key, epoch)`).
`decay_unmasked` (with a mask only): mask the gradients, not the updates, so that weight decay still
shrinks masked-out parameters (`base.optimizer`; SalUn's code before Feb 2026).
Both passes drop the last partial batch (reshuffled every epoch), as everywhere in this library;
the PyTorch loaders keep it (drop_last=False).

Stacked states: each seed draws its own random labels from its own key, so seed i of a stacked
run equals a single run with key i (up to float reassociation under `vmap`).

Defaults (SGD lr 0.01, momentum 0.9, weight decay 5e-4, cosine, 3 epochs, batch 64): on digits
(CNN width 0.5, 10 % IID forget set, 2 seeds) forget accuracy 1.00 -> ~0.97, retain ~0.995,
test ~0.95-0.96 (the retrained oracle: ~0.98 / 1.00 / ~0.97).
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp

from unlearn_jax.methods import base, common
from unlearn_jax.train import num_models, replicate, train_step

USES_FORGET = True
DEFAULTS = dict(epochs=3, batch_size=64, learning_rate=0.01, momentum=0.9, weight_decay=5e-4,
                schedule="cosine", final_lr_fraction=0.0, allow_true_label=False,
                procedure="union", decay_unmasked=False)
PROCEDURES = ("union", "forget_then_retain")


def random_labels(key, y, num_classes: int, allow_true_label: bool = False, stacked=False):
  """Random labels for `y`: uniform over the other classes (default) or over all classes.

  With `stacked`, `key` is `[N, 2]` and the result `[N, n]` (one draw per model); `y` is `[n]`
  (shared) or `[N, n]` (each model's own labels, a per-model split).
  """
  y = jnp.asarray(y, jnp.int32)

  def one(k, yk):
    if allow_true_label:
      return jax.random.randint(k, yk.shape, 0, num_classes, jnp.int32)
    return (yk + jax.random.randint(k, yk.shape, 1, num_classes, jnp.int32)) % num_classes

  if not stacked:
    return one(key, y)
  return jax.vmap(one, in_axes=(0, 0 if y.ndim == 2 else None))(key, y)


def fit_labels(state, x, y, *, key, epochs: int, batch_size: int, data: base.UnlearnData,
               train_step_fn, index=None) -> Any:
  """`train.fit` whose labels may carry a model axis (`y` of shape `[N, n]` for a stacked state).

  Same data order as `train.fit` (permutation of epoch e from `fold_in(key, e)`, last partial
  batch dropped), so with shared labels it trains exactly like `fit`. With a per-model `index`
  (`[N, n]` rows of `x`, `base.Rows`), `y` holds each model's labels by position (`[N, n]`).
  """
  x, y = replicate(jnp.asarray(x), data.mesh), replicate(jnp.asarray(y), data.mesh)
  per_model = base.is_stacked(state) and y.ndim == 2
  shared, own = ({"x": x}, {"y": y}) if per_model else ({"x": x, "y": y}, None)
  state = replicate(common.fresh_copy(state), data.mesh)  # steps donate their input
  for epoch in range(epochs):
    state = common.run_epoch(state, shared, own, key=key, epoch=epoch, batch_size=batch_size,
                             step_fn=train_step_fn, data=data, index=index,
                             own_at="rows" if index is None else "positions")
  return state


def relabel_and_train(state, data: base.UnlearnData, cfg, key, mask=None, *,
                      allow_true_label: bool, info: Optional[dict] = None,
                      extra_example_gradients: int = 0, timer: Optional[base.Timer] = None
                      ) -> base.UnlearnResult:
  """Train with CE on D_r and D_f relabeled at random (per model); the RL/SalUn/amnesiac core.

  `cfg.get("procedure", "union")` selects the data order (module docstring)."""
  if cfg.get("procedure", "union") == "forget_then_retain":
    return forget_then_retain(state, data, cfg, key, mask, allow_true_label=allow_true_label,
                              info=info, extra_example_gradients=extra_example_gradients,
                              timer=timer)
  timer = timer or base.Timer().__enter__()
  base.check_split(data, state)
  stacked = base.is_stacked(state)
  label_key, data_key = common.split_keys(key, stacked)
  fy = random_labels(label_key, data.forget.labels(), data.num_classes, allow_true_label,
                     stacked)
  ry = data.retain.labels()
  if stacked:
    ry = jnp.broadcast_to(ry, (num_models(state), ry.shape[-1]))
  y = jnp.concatenate([ry, fy], axis=-1)  # by position: retain rows, then forget rows
  train = data.train
  steps = base.steps_per_epoch(len(train), cfg["batch_size"], data)
  tx = base.optimizer(cfg, cfg["epochs"] * steps, mask)
  state = base.with_optimizer(state, tx, mask)
  state = fit_labels(state, train.x, y, key=data_key, epochs=cfg["epochs"],
                     batch_size=cfg["batch_size"], data=data, train_step_fn=train_step,
                     index=train.index)
  return base.result(state, timer, epochs=cfg["epochs"], info=info,
                     example_gradients=cfg["epochs"] * steps * cfg["batch_size"]
                     + extra_example_gradients)


def forget_then_retain(state, data: base.UnlearnData, cfg, key, mask=None, *,
                       allow_true_label: bool, info: Optional[dict] = None,
                       extra_example_gradients: int = 0, timer: Optional[base.Timer] = None
                       ) -> base.UnlearnResult:
  """SalUn's RL order: per epoch e, a pass over D_f with labels redrawn from
  `fold_in(label_key, e)`, then a pass over D_r; one optimizer (momentum shared by both)."""
  timer = timer or base.Timer().__enter__()
  base.check_split(data, state)
  stacked = base.is_stacked(state)
  label_key, forget_key, retain_key = common.split_keys(key, stacked, 3)
  b = int(cfg["batch_size"])
  n_f, n_r = data.num_forget, data.num_retain
  b_f = min(b, n_f)
  f_steps = base.steps_per_epoch(n_f, b_f, data)
  r_steps = base.steps_per_epoch(n_r, b, data)
  epochs = int(cfg["epochs"])
  tx = base.optimizer(cfg, epochs * (f_steps + r_steps), mask, epoch_steps=f_steps + r_steps)
  state = base.with_optimizer(state, tx, mask)
  put = lambda a, dtype=None: replicate(jnp.asarray(a, dtype), data.mesh)
  fx, rx, ry = put(data.forget_x), put(data.retain_x), put(data.retain_y, jnp.int32)
  state = replicate(common.fresh_copy(state), data.mesh)  # steps donate their input
  fold = jax.vmap(jax.random.fold_in, in_axes=(0, None)) if stacked else jax.random.fold_in
  forget_labels = data.forget.labels()
  for epoch in range(epochs):
    fy = put(random_labels(fold(label_key, epoch), forget_labels, data.num_classes,
                           allow_true_label, stacked))
    shared, own = ({"x": fx}, {"y": fy}) if stacked else ({"x": fx, "y": fy}, None)
    state = common.run_epoch(state, shared, own, key=forget_key, epoch=epoch, batch_size=b_f,
                             step_fn=train_step, data=data, index=data.forget_index,
                             own_at="positions" if data.forget_index is not None else "rows")
    state = common.run_epoch(state, {"x": rx, "y": ry}, None, key=retain_key, epoch=epoch,
                             batch_size=b, step_fn=train_step, data=data,
                             index=data.retain_index)
  info = dict(info or {}, forget_batch_size=b_f)
  return base.result(state, timer, epochs=epochs, info=info,
                     example_gradients=epochs * (f_steps * b_f + r_steps * b)
                     + extra_example_gradients)


def check_procedure(name: str, cfg) -> None:
  """`procedure` of the relabeling methods."""
  base.require(name, cfg.get("procedure", "union") in PROCEDURES,
               f"procedure must be one of {', '.join(PROCEDURES)}, got {cfg.get('procedure')!r}")


def check_config(cfg, data: base.UnlearnData | None = None) -> None:
  common.check_sgd_config("random_label", cfg)
  check_procedure("random_label", cfg)
  base.require("random_label", isinstance(cfg["decay_unmasked"], bool),
               f"decay_unmasked must be true or false, got {cfg['decay_unmasked']!r}")
  if data is not None:
    common.check_forget("random_label", data)
    base.require("random_label", data.num_classes >= 2, "needs at least 2 classes")


def unlearn(state, data: base.UnlearnData, cfg, key, mask=None) -> base.UnlearnResult:
  check_config(cfg, data)
  with base.Timer() as timer:
    return relabel_and_train(state, data, cfg, key, mask,
                             allow_true_label=bool(cfg["allow_true_label"]), timer=timer)
