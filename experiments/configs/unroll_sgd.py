"""python -m experiments.unroll_sgd --config=experiments/configs/unroll_sgd.py --workdir=DIR

Config of `experiments.unroll_sgd`: the correlation study of Thudi et al., "Unrolling SGD"
(`20-unroll.md` §6), at CPU scale (`unlearn_jax/pipelines/unroll_sgd.py`).

The public code's setup scaled down: pretrain (SGD lr 0.1, momentum 0.9, wd 5e-4, batch 128,
cosine; their 50 epochs of ResNet-18 on CIFAR-10 become 20 of the 256x256 MLP on MNIST-1D, the
project's default benchmark data), once per SD-loss λ (pretrained with that λ, as the public code
does); then, from each pretrained model, fine-tune M and M' in lockstep for one epoch (SGD
constant lr, momentum 0.9, wd 5e-4, batch 32; B* = one random batch of 32 moved to the front,
which M' skips) for every learning rate and seed (a seed draws B*, the order of the other
batches and the power iteration's start). Every step gives a point (unlearning error,
verification error of single-gradient unlearning); σ is measured every `sigma_every` steps on the
first `hessian_examples` training examples.

Argument (optional): `quick` (digits, 2 λ, 1 lr, 2 seeds, 8 steps: the tests), or `key=value`
pairs dataset, model, width, e.g. `--config=experiments/configs/unroll_sgd.py:dataset=mnist5k`.
Every field can be overridden, e.g. `--config.sweep.lambdas=0,1,10`.
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict

from experiments.configs.common import data_config, model_config, parse_arg
from unlearn_jax import runtime

ARG_KEYS = ("quick", "dataset", "model", "width")


def get_config(arg: str | None = None):
  # a bare `quick` means quick=true
  arg = ",".join("quick=true" if p.strip() == "quick" else p for p in (arg or "").split(","))
  opts = parse_arg(arg, ARG_KEYS)
  quick = opts.get("quick", "false").lower() in ("1", "true", "yes", "")
  dataset = opts.get("dataset", "digits" if quick else "mnist1d")
  config = ml_collections.ConfigDict()
  config.data = data_config(dataset)
  config.model = model_config(opts.get("model", "mlp"), dataset)
  if quick:
    config.model.width = 0.125
  if "width" in opts:
    config.model.width = float(opts["width"])
  config.pretrain = ml_collections.ConfigDict(dict(
      epochs=2 if quick else 20,
      batch_size=128,
      learning_rate=0.1,
      momentum=0.9,
      weight_decay=5e-4,
      schedule="cosine",       # cosine | constant
      seed=0,                  # initialization and data order (shared by every λ)
  ))
  config.sweep = ml_collections.ConfigDict(dict(
      # SD-loss λ (pretraining and fine-tuning); λ = 100 collapses this MLP to chance (10 %)
      lambdas=(0.0, 1.0) if quick else (0.0, 1.0, 5.0, 10.0, 20.0),
      # constant η of the fine-tuning: the public code's 0.01 and 0.1 and the decade below
      learning_rates=(0.05,) if quick else (0.001, 0.003, 0.01, 0.03, 0.1),
      seeds=(0, 1) if quick else (0, 1, 2),
      batch_size=32,           # B = |B*|
      epochs=1,                # fine-tuning epochs (B* at the front of each; n = epochs)
      max_steps=8 if quick else config_dict.placeholder(int),   # cap on the steps T
      momentum=0.9,
      weight_decay=5e-4,
      sigma_every=2 if quick else 4,   # K: σ measured every K steps (T is cut to a multiple)
      hessian_examples=64 if quick else 512,
      power_tol=1e-3,
      power_max_iter=100,
      checkpoint_every=4 if quick else 28,   # F of the checkpointed unlearning error
      sigma_form="abs",        # abs: |λ_max| (default) | sqrt: the public code's sqrt(λ_max)
      driver="scan",           # scan: one program per λ | python: jitted chunks (conv nets on CPU)
  ))
  config.analysis = ml_collections.ConfigDict(dict(
      bootstrap=200 if quick else 1000,   # resamples of runs for the r intervals
      bootstrap_seed=0,
      strong_r=0.7,            # "strong correlation": Pearson and Spearman r >= this
      max_accuracy_cost=0.05,  # "modest accuracy cost" of the SD loss: <= 5 pp test accuracy
      growth_rho=0.5,          # "grows with": Spearman ρ above this
      alpha=0.05,              # level of the paired tests
      paired_test="sign",      # sign | wilcoxon: SD loss and single gradient, paired runs
      plots=True,
  ))
  config.eval_batch_size = 1000
  config.progress = True
  config.deterministic = True
  config.matmul_precision = "highest"
  config.compilation_cache = runtime.default_cache_dir()
  return config
