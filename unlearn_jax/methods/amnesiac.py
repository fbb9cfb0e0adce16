"""Amnesiac unlearning: relabel D_f with random wrong labels and train briefly on D_r ∪ D_f.

Definition (`40-methods.md`, common baseline form): every forget example gets a label drawn
uniformly from the classes other than its own, and θ* is trained with cross-entropy on
D_r ∪ relabeled D_f for a few epochs at a constant learning rate.

Source: Graves, Nagisetty, Ganesh, "Amnesiac Machine Learning", AAAI 2021 (the relabeling form
of amnesiac unlearning); the baseline form follows Chundawat et al. ("Bad Teacher", AAAI 2023)
and Foster et al. ("Selective Synaptic Dampening", AAAI 2024).

How it differs from `random_label`: the update is the same family, but amnesiac labels are always
wrong (no `allow_true_label`), it uses a constant learning rate with no weight decay and a short
run (the "a few iterations of relabeled training" of the amnesiac papers), while `random_label`
follows the SalUn/DEL recipe (cosine schedule, weight decay). Neither stores or subtracts
per-batch updates (Graves et al.'s other, storage-based variant is not implemented).
"""

from __future__ import annotations

from unlearn_jax.methods import base, common
from unlearn_jax.methods.random_label import relabel_and_train

USES_FORGET = True
# `optimizer`: sgd (momentum, weight decay, schedule apply) or adam (only the learning rate
# applies), as the SSD code runs amnesiac (Adam, `45-recipes.md`).
DEFAULTS = dict(epochs=2, batch_size=64, learning_rate=0.01, momentum=0.9, weight_decay=0.0,
                schedule="constant", final_lr_fraction=0.0, optimizer="sgd")


def check_config(cfg, data: base.UnlearnData | None = None) -> None:
  common.check_sgd_config("amnesiac", cfg)
  base.require("amnesiac", cfg["optimizer"] in base.OPTIMIZERS,
               f"optimizer must be one of {', '.join(base.OPTIMIZERS)}, got {cfg['optimizer']!r}")
  if data is not None:
    common.check_forget("amnesiac", data)


def unlearn(state, data: base.UnlearnData, cfg, key, mask=None) -> base.UnlearnResult:
  check_config(cfg, data)
  with base.Timer() as timer:
    return relabel_and_train(state, data, cfg, key, mask, allow_true_label=False,
                             timer=timer)
