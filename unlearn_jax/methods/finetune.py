"""Finetune: continue training θ* on D_r with cross-entropy (cosine lr), a few epochs.

Uses only the retain set (a catastrophic-forgetting baseline; e.g. SalUn, Fan et al. 2024;
L1-sparse, Jia et al. 2023). `40-methods.md`.
"""

from unlearn_jax.methods import base, common

USES_FORGET = False
VECTORIZED = ("learning_rate",)  # a base.PerModel learning rate: one per stacked model
DEFAULTS = dict(epochs=3, batch_size=64, learning_rate=0.01, momentum=0.9, weight_decay=5e-4,
                schedule="cosine", final_lr_fraction=0.0)


def check_config(cfg, data: base.UnlearnData | None = None) -> None:
  common.check_sgd_config("finetune", cfg)
  if data is not None:
    common.check_batch("finetune", "batch_size", "retain", cfg["batch_size"], data.num_retain)


def unlearn(state, data: base.UnlearnData, cfg, key, mask=None) -> base.UnlearnResult:
  check_config(cfg, data)
  base.check_split(data, state)
  with base.Timer() as timer:
    steps = base.steps_per_epoch(data.num_retain, cfg["batch_size"], data)
    tx = base.optimizer(cfg, cfg["epochs"] * steps, mask)
    state = base.with_optimizer(state, tx, mask)
    state = base.train_on(state, data.retain, key=key, epochs=cfg["epochs"],
                          batch_size=cfg["batch_size"], data=data)
  return base.result(state, timer, example_gradients=cfg["epochs"] * steps * cfg["batch_size"],
                     epochs=cfg["epochs"])
