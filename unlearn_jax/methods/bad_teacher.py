"""Bad teacher: distill from a competent teacher on D_r and an incompetent one on D_f.

Chundawat, Tarun, Mandal, Kankanhalli, "Can Bad Teaching Induce Forgetting? Unlearning in Deep
Networks Using an Incompetent Teacher", AAAI 2023 (arXiv 2205.08096; code
github.com/vikram2000/bad-teaching-unlearning, reused by the SSD code). `40-methods.md`.

The student starts at θ* and trains (training mode) on a pool of a random `retain_fraction` of
D_r (drawn per seed) plus all of D_f. Each example's target is the tempered softmax of a frozen
teacher run in inference mode: the competent teacher θ* for retain examples, the incompetent
teacher (a fresh `data.model.init` from a new key, one per seed, never trained) for forget
examples. The loss of a batch of the shuffled pool (so batches mix retain and forget examples,
as the reference `UnLearningData` loader does) is

  KL(target || softmax(student / T))  with  target = softmax(teacher / T),

reduced as PyTorch's default `F.kl_div(..., reduction="mean")` in the reference code: the mean
over batch *and* classes, no T^2 factor (`common.kl_divergence(..., reduction="mean")`; with Adam
the overall scale of the loss hardly matters). Set `reduction="batchmean_t2"` for SCRUB's form.

Defaults follow the reference code (T = 1, Adam, retain subset 30 %) except the step count and
the learning rate, scaled for digits-sized problems: one epoch of batch 256 over
0.3 * 1164 + 129 digits examples is a single step, and Adam at lr 1e-4 leaves the model unchanged
even over 3 epochs of batch 32 (forget accuracy stays 100 %). With batch 32, 2 epochs, lr 1e-3 on
digits (CNN width 0.5, 10 % iid forget set, 2 seeds) forget accuracy drops from 100 % to about
97 %, retain accuracy to about 99 %, test accuracy by 1.5-2.5 points; lr 5e-4 moves forget
accuracy only to about 99 %, a larger retain fraction dilutes the forgetting (0.6: 99-100 %).
For CIFAR-sized sets the reference values (epochs=1, batch_size=256, learning_rate=1e-4) are the
ones to start from. As in `train.fit`, the last partial batch of an epoch is dropped (each epoch
reshuffles). A mask (`10-del.md` §6) restricts which parameters move (BatchNorm running
statistics still update).
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import optax

from unlearn_jax.methods import base, common
from unlearn_jax.train import create_train_state, predict, take_rows

USES_FORGET = True
DEFAULTS = dict(
    epochs=2,                # reference code: 1 (with batch 256 on CIFAR-sized sets)
    batch_size=32,           # reference code: 256
    optimizer="adam",        # adam (reference) | sgd (then momentum/weight_decay/schedule apply)
    learning_rate=1e-3,      # reference code: 1e-4
    momentum=0.9,            # sgd only
    weight_decay=0.0,        # sgd only
    schedule="constant",     # sgd only: constant | cosine
    temperature=1.0,         # T (KL_temperature of the reference code)
    retain_fraction=0.3,     # fraction of D_r in the distillation pool (reference: 0.3)
    reduction="mean",        # mean (reference F.kl_div default) | batchmean_t2 (SCRUB's DistillKL)
)

_REDUCTIONS = ("mean", "batchmean_t2")


@functools.lru_cache(maxsize=None)
def bad_teacher_step(temperature: float, reduction: str):
  """Step on batches with `x` and `p` (the target distribution of each example)."""

  def loss(logits, batch, params, step):
    del params, step
    log_ps = jax.nn.log_softmax(logits / temperature, axis=-1)
    return common.kl_from_probs(log_ps, batch["p"], temperature, reduction=reduction)

  return common.make_step(loss)


def targets(competent, incompetent, x, is_forget, temperature: float, model_axis: str,
            index=None):
  """Per row of `x`: softmax(teacher / T) of the incompetent teacher where `is_forget`, of the
  competent one elsewhere (`[n, C]`, or `[N, n, C]` for stacked teachers). With a per-model
  `index` (`[N, n]`) the rows are each model's `x[index[k]]`, in that order."""
  good = jax.nn.softmax(predict(competent, x, model_axis=model_axis, index=index) / temperature,
                        axis=-1)
  bad = jax.nn.softmax(predict(incompetent, x, model_axis=model_axis, index=index) / temperature,
                       axis=-1)
  return jnp.where(is_forget[:, None], bad, good)


def check_config(cfg: Mapping[str, Any], data: base.UnlearnData | None = None) -> None:
  common.check_distill_config("bad_teacher", cfg)
  base.require("bad_teacher", cfg["optimizer"] in base.OPTIMIZERS,
               f"optimizer must be 'adam' or 'sgd', got {cfg['optimizer']!r}")
  base.require("bad_teacher", 0 < cfg["retain_fraction"] <= 1,
               f"retain_fraction must be in (0, 1], got {cfg['retain_fraction']}")
  base.require("bad_teacher", cfg["reduction"] in _REDUCTIONS,
               f"reduction must be one of {_REDUCTIONS}, got {cfg['reduction']!r}")
  if data is not None:
    nr, nf = data.num_retain, common.check_forget("bad_teacher", data)
    m = int(round(cfg["retain_fraction"] * nr))
    base.require("bad_teacher", m >= 1,
                 f"retain_fraction {cfg['retain_fraction']} of {nr} retain examples is empty")
    common.check_batch("bad_teacher", "batch_size",
                       "distillation pool (retain subset + forget)", cfg["batch_size"], m + nf)


def unlearn(state, data: base.UnlearnData, cfg, key, mask=None) -> base.UnlearnResult:
  check_config(cfg, data)
  base.check_split(data, state)
  nr, nf = data.num_retain, data.num_forget
  m = int(round(cfg["retain_fraction"] * nr))
  pool = m + nf
  epochs, bs = int(cfg["epochs"]), int(cfg["batch_size"])
  with base.Timer() as timer:
    stacked = base.is_stacked(state)
    steps = base.steps_per_epoch(pool, bs, data)
    tx = base.optimizer(cfg, epochs * steps, mask)  # cfg["optimizer"]: adam | sgd
    train = data.train                                      # positions: retain, then forget
    is_forget = jnp.arange(nr + nf) >= nr
    init_key, subset_key, data_key = common.split_keys(key, stacked, 3)
    incompetent = create_train_state(data.model, optax.identity(), init_key, data.image_shape)
    p = targets(state, incompetent, train.x, is_forget, float(cfg["temperature"]),
                data.model_axis, index=train.index)
    subset = lambda k: jnp.concatenate([jax.random.permutation(k, nr)[:m],
                                        jnp.arange(nr, nr + nf)])
    index = (jax.vmap(subset) if stacked else subset)(subset_key)  # positions of the pool
    own_at = "rows"
    if train.per_model:  # each model's pool rows, its targets by pool position
      p = jnp.take_along_axis(p, index[..., None], axis=-2)
      index, own_at = take_rows(train.index, index), "positions"
    student = common.fresh_copy(base.with_optimizer(state, tx, mask))
    step = bad_teacher_step(float(cfg["temperature"]), cfg["reduction"])
    for epoch in range(epochs):
      student = common.run_epoch(student, {"x": train.x}, {"p": p}, index=index, key=data_key,
                                 epoch=epoch, batch_size=bs, step_fn=step, data=data,
                                 own_at=own_at)
  return base.result(student, timer, example_gradients=epochs * steps * bs, epochs=epochs,
                     info={"pool_size": pool, "retain_in_pool": m,
                           "teacher_forward_examples": 2 * (nr + nf)})
