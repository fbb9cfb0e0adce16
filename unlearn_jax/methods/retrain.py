"""Retrain (the oracle): train from a fresh initialization on D_r with the original recipe.

The gold standard every other method is compared with (`40-methods.md`). The fresh init comes
from `key`, so it differs from the original model's init.
"""

from unlearn_jax.methods import base, common
from unlearn_jax.train import create_train_state

USES_FORGET = False
DEFAULTS = dict(epochs=12, batch_size=64, learning_rate=0.1, momentum=0.9, weight_decay=5e-4,
                schedule="cosine", final_lr_fraction=0.0)


def check_config(cfg, data: base.UnlearnData | None = None) -> None:
  common.check_sgd_config("retrain", cfg)
  if data is not None:
    common.check_batch("retrain", "batch_size", "retain", cfg["batch_size"], data.num_retain)


def unlearn(state, data: base.UnlearnData, cfg, key, mask=None) -> base.UnlearnResult:
  base.require("retrain", mask is None, "a mask does not apply to retraining from scratch")
  check_config(cfg, data)
  base.check_split(data, state)
  with base.Timer() as timer:
    steps = base.steps_per_epoch(data.num_retain, cfg["batch_size"], data)
    tx = base.optimizer(cfg, cfg["epochs"] * steps)
    init_key, data_key = common.split_keys(key, base.is_stacked(state))
    fresh = create_train_state(data.model, tx, init_key, data.image_shape)
    fresh = base.train_on(fresh, data.retain, key=data_key,
                          epochs=cfg["epochs"], batch_size=cfg["batch_size"], data=data)
  return base.result(fresh, timer, example_gradients=cfg["epochs"] * steps * cfg["batch_size"],
                     epochs=cfg["epochs"])
