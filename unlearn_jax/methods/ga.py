"""Gradient ascent (GA): ascend the cross-entropy on the forget set only.

Definition (`40-methods.md`): starting from θ*, minimise −CE(D_f) with SGD over mini-batches of
D_f (D_r is never read). The loss is unbounded below, so GA eventually destroys the model (and
can diverge to NaN/inf, which `base.result` detects and reports); the defaults are a short,
small-step run that lowers forget accuracy on the small test setups without wrecking the model.

Source: Thudi et al., "Unrolling SGD: Understanding Factors Influencing Machine Unlearning",
EuroS&P 2022; Jang et al., "Knowledge Unlearning", ACL 2023 (gradient ascent on the data to
forget); used as a baseline by SalUn (Fan et al., ICLR 2024) and DEL (arXiv 2412.02432).

`epoch_length="retain"` runs DEL's GA instead (reihaneh-torkzadehmahani/DEL-Unlearning
`unlearn.py`, `zip(retain_dl, cycle(forget_dl))`): an epoch is ⌊|D_r|/B_r⌋ steps (B_r =
`retain_batch_size`), each on a forget batch, the forget permutation of the epoch replayed
(`neggrad_plus.paired_descent_ascent` with β = 0); every step also forwards a retain batch in
training mode first, whose loss has weight 0 but which updates BatchNorm statistics, as DEL's
loop does (`logits = model(images)` on the retain batch).

Batches larger than D_f are clipped to |D_f| (forget sets can be tiny).

Defaults (constant lr 0.02, 5 epochs, batch 32, momentum 0.9, no weight decay): GA is a cliff. On
digits (CNN width 0.5, 10 % IID forget set, 2 seeds) they take forget accuracy from 1.00 to
~0.90-0.95 with retain ~0.97-0.99 and test ~0.93-0.95; lr 0.01 barely moves the model, lr 0.05
collapses it (~0.15-0.2 everywhere).
"""

from __future__ import annotations

from unlearn_jax.methods import base, common, neggrad_plus
from unlearn_jax.train import cross_entropy, make_train_step

USES_FORGET = True
DEFAULTS = dict(epochs=5, batch_size=32, learning_rate=0.02, momentum=0.9, weight_decay=0.0,
                schedule="constant", final_lr_fraction=0.0, epoch_length="forget",
                retain_batch_size=128)
EPOCH_LENGTHS = ("forget", "retain")


def neg_ce_objective(logits, labels, params, step):
  del params, step
  return -cross_entropy(logits, labels)


ASCENT_STEP = make_train_step(neg_ce_objective)  # module level: compiled once per setting


def check_ascent_config(name: str, cfg, data: base.UnlearnData | None = None) -> None:
  """Checks of `ga` and `neggrad` (batches larger than D_f are clipped, so any size >= 1)."""
  common.check_sgd_config(name, cfg)
  if "epoch_length" in cfg:
    base.require(name, cfg["epoch_length"] in EPOCH_LENGTHS,
                 f"epoch_length must be one of {', '.join(EPOCH_LENGTHS)}, got "
                 f"{cfg['epoch_length']!r}")
  if "retain_batch_size" in cfg:
    rb = cfg["retain_batch_size"]
    base.require(name, common.is_int(rb) and rb >= 1,
                 f"retain_batch_size must be an integer >= 1, got {rb!r}")
  if data is not None:
    common.check_forget(name, data)
    if cfg.get("epoch_length") == "retain":
      common.check_batch(name, "retain_batch_size", "retain", cfg["retain_batch_size"],
                         data.num_retain)


def check_config(cfg, data: base.UnlearnData | None = None) -> None:
  check_ascent_config("ga", cfg, data)


def gradient_ascent(name: str, state, data: base.UnlearnData, cfg, key, mask=None
                    ) -> base.UnlearnResult:
  """The GA update shared by `ga` and `neggrad` (errors name `name`)."""
  check_ascent_config(name, cfg, data)
  base.check_split(data, state)
  n = data.num_forget
  if cfg.get("epoch_length") == "retain":
    with base.Timer() as timer:
      return neggrad_plus.paired_descent_ascent(
          state, data, {**cfg, "forget_cycle": "epoch"}, key, mask, beta=0.0,
          retain_batch_size=cfg["retain_batch_size"], forget_batch_size=cfg["batch_size"],
          timer=timer)
  with base.Timer() as timer:
    batch_size = min(int(cfg["batch_size"]), n)
    steps = base.steps_per_epoch(n, batch_size, data)
    tx = base.optimizer(cfg, cfg["epochs"] * steps, mask)
    state = base.with_optimizer(state, tx, mask)
    state = base.train_on(state, data.forget, key=key, epochs=cfg["epochs"],
                          batch_size=batch_size, data=data, train_step_fn=ASCENT_STEP)
  return base.result(state, timer, example_gradients=cfg["epochs"] * steps * batch_size,
                     epochs=cfg["epochs"], info={"batch_size": batch_size})


def unlearn(state, data: base.UnlearnData, cfg, key, mask=None) -> base.UnlearnResult:
  return gradient_ascent("ga", state, data, cfg, key, mask)
