"""python -m experiments.del_localization --config=experiments/configs/del_localization.py --workdir=DIR

Config of `experiments.del_localization`: DEL's localization study (`10-del.md`; pipeline
`unlearn_jax/pipelines/del_localization.py`): strategies x budgets with Reset + Finetune (a),
strategies x unlearning algorithms (b), the main table (c), the score ablation (d) and DEL's
finetuning epochs vs quality (e), for an IID and a non-IID forget set.

Argument (optional): `key=value` pairs separated by commas:
  quick        tiny run for the tests (digits MLP, 3 seeds, few cells)
  seeds        original models per cell (default 5: the fewest with which a one-sided sign
               test over seeds can reach p <= 0.05; the oracle gets 2x, for the FQ ceiling)
  setting      a named benchmark setting of `experiments/configs/common.py` (e.g. `conv`)
  parts        `+`-separated letters of the parts to run (default a+b+c+d+e)
  forget       `+`-separated forget kinds (default iid+non_iid)

Default: the main job's benchmark (MNIST-1D, MLP 256x256 with BatchNorm, 40 epochs, no weight
decay: the original's forget accuracy is ~31 pp above the oracle's, docs/results/
benchmark_search/), 5 seeds, 10 oracle seeds, the mnist1d method presets of
`experiments/configs/unlearn.py` (DEL: lr 0.05, 10 epochs, batch 64, α = 0.3); the baselines
of the claims (SalUn, full Finetune / NegGrad+ / Random-Label) tuned on validation at DEL's 10
epochs (`baselines`); critmem as Maini et al. publish it (`localization.critmem_*`). The claims'
thresholds (`claims_tolerance_pp`, the grids, λ) are fixed here, before the run.
"""

from __future__ import annotations

import ml_collections

from experiments.configs.common import base_config, parse_arg
from experiments.configs.unlearn import method_config

ARG_KEYS = ("quick", "seeds", "oracle_seeds", "setting", "parts", "forget")


def get_config(arg: str | None = None):
  # a bare `quick` is `quick=true`
  arg = ",".join("quick=true" if p.strip() == "quick" else p for p in (arg or "").split(","))
  opts = parse_arg(arg, ARG_KEYS)
  quick = opts.pop("quick", "false").lower() in ("1", "true", "yes", "")
  parts = tuple(opts.pop("parts", "a+b+c+d+e").split("+"))
  kinds = tuple(opts.pop("forget", "iid+non_iid").split("+"))
  if quick:
    opts = {"dataset": "digits", "model": "mlp", "epochs": "3", "seeds": "3",
            "oracle_seeds": "3", **opts}
  opts.setdefault("seeds", "5")
  reference = base_config(opts)
  dataset = reference.data.name
  config = ml_collections.ConfigDict()
  config.reference = reference
  config.forget_kinds = kinds
  # non-IID forget set: this fraction of the examples of `reference.forget.classes` (2 and 5);
  # DEL takes half of them (5,000 of CIFAR-10's 10,000), i.e. 10 % of the training set
  config.non_iid_fraction = 0.5
  config.parts = parts
  config.alpha = 0.3                     # DEL's budget (parts b-e)
  config.budgets = (0.1, 0.2, 0.3, 0.5)  # part a
  config.strategies = ("del", "salloc", "random_param", "random_channel", "shallowest",
                       "deepest", "critmem")
  config.algorithms = ("reset_finetune", "finetune", "neggrad_plus", "random_label")
  config.ablation = ml_collections.ConfigDict(dict(
      granularities=("param", "channel"), criteria=("grad", "weighted_grad"),
      aggregations=("sum_then_abs", "abs_then_sum"),
      extra_criteria=("weight", "weighted_grad_all")))
  config.curve_epochs = (1, 2, 3, 5, 10, 30)  # part e: DEL's finetuning epochs
  config.localization = ml_collections.ConfigDict(dict(
      top_h="ten_percent_of_channels",  # DEL's ResNet rule (h = 10 % of output channels)
      mask_batch_size=128,              # gradient batches of the scores (memory only)
      chunk_size=0,                     # per-example gradient chunk; 0 = from a memory budget
      # critmem as published (Maini et al.) but for the population: theirs is the training
      # batch that holds the example (512); ours is B - 1 = 63 retain examples (B = our training
      # batch 64) drawn once per seed and shared by the forget examples, so no other forget
      # example is in it; conv channels and single elements as units, no cap, no layer left out
      critmem_batch=int(reference.train.batch_size),  # 0: the example's loss alone
      critmem_units="maini",            # or 'channel' (output channels of every kernel)
      critmem_max_steps=0,              # 0: no cap
      critmem_chunk_size=16,            # examples removed in parallel
      critmem_exclude="",               # '+'-separated layer names left out of the units
      official_batch_size=128,          # `del_official`: DEL's forget loader (drop_last)
  ))
  config.method_configs = ml_collections.ConfigDict(
      {m: method_config(m, dataset) for m in ("del", "finetune", "neggrad_plus",
                                              "random_label")})
  # the baselines of "DEL is closer to the oracle than X" (SalUn and the full-parameter
  # Finetune, NegGrad+, Random-Label), tuned before the claims on the validation split at DEL's
  # budget: epochs 0 = DEL's finetuning epochs; privacy objective (unlearn_jax/tuning.py) with
  # the main job's λ; the grids bracket the module defaults (lr 0.01, β 0.99); a selection on a
  # grid's edge adds the next point beyond it, `extend` times at most
  config.baselines = ml_collections.ConfigDict(dict(
      tune=True, goal="privacy", lam=0.4, epochs=0, extend=3,
      space=ml_collections.ConfigDict({
          "finetune": {"learning_rate": (0.003, 0.01, 0.03, 0.1)},
          "neggrad_plus": {"learning_rate": (0.003, 0.01, 0.03), "beta": (0.9, 0.97, 0.99)},
          "random_label": {"learning_rate": (0.003, 0.01, 0.03, 0.1)},
      })))
  config.eval = ml_collections.ConfigDict(dict(
      batch_size=1000, mia_splits=5, mia_seed=0, svc_features=("confidence",), workers=1))
  config.claims_tolerance_pp = 2.0  # "matches the oracle": |Δforget| <= max(this, 2 oracle stds)
  config.claims_paper_stds = 2.0    # "equals the paper's number": within this many paper stds
  if quick:
    config.forget_kinds = kinds
    config.budgets = (0.3,)
    config.strategies = ("del", "random_param", "critmem")
    config.algorithms = ("reset_finetune", "random_label")
    config.ablation.granularities = ("channel",)
    config.ablation.criteria = ("weighted_grad",)
    config.ablation.extra_criteria = ("weighted_grad_all",)
    config.curve_epochs = (1, 2)
    config.baselines.space = ml_collections.ConfigDict(
        {"random_label": {"learning_rate": (0.01, 0.05)}})
    config.baselines.extend = 1
    config.localization.official_batch_size = 8
    config.localization.critmem_max_steps = 4
    config.localization.critmem_batch = 8
    for m in config.method_configs:
      config.method_configs[m].epochs = 1
    config.method_configs["del"].epochs = 2
  config.progress = True
  for key in ("deterministic", "matmul_precision", "compilation_cache"):
    config[key] = reference[key]
  return config
