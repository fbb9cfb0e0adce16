"""shrink_finetune: scale every weight by (1 - shrink), then finetune on D_r (a user method)."""
import jax

from unlearn_jax.methods import base, common

USES_FORGET = False
DEFAULTS = dict(shrink=0.3, epochs=2, batch_size=64, learning_rate=0.01, momentum=0.9,
                weight_decay=5e-4, schedule="cosine", final_lr_fraction=0.0)


def check_config(cfg, data=None):
  base.require("shrink_finetune", 0 <= cfg["shrink"] < 1, "shrink must be in [0, 1)")
  common.check_sgd_config("shrink_finetune", cfg)


def unlearn(state, data, cfg, key, mask=None):
  check_config(cfg, data)
  with base.Timer() as timer:
    state = state.replace(params=jax.tree_util.tree_map(lambda p: p * (1 - cfg["shrink"]),
                                                        state.params))
    steps = base.steps_per_epoch(data.num_retain, cfg["batch_size"], data)
    state = base.with_optimizer(state, base.optimizer(cfg, cfg["epochs"] * steps, mask), mask)
    state = base.train_on(state, data.retain, key=key, epochs=cfg["epochs"],
                          batch_size=cfg["batch_size"], data=data)
  return base.result(state, timer, epochs=cfg["epochs"],
                     example_gradients=cfg["epochs"] * steps * cfg["batch_size"])
