"""python -m experiments.benchmark_search --config=experiments/configs/benchmark_search.py --workdir=DIR

Config of `experiments.benchmark_search`: candidate settings for the default benchmark, each the
reference training of `experiments/configs/train.py` (original + retrain oracle) with a few
overrides, measured for how well it tells unlearning from doing nothing
(`unlearn_jax/pipelines/benchmark_search.py`). All use an IID forget set of 10 %, SGD with
momentum 0.9, lr 0.1 with a cosine schedule, batch 64, 4 original and 8 oracle seeds (FQ of 4 vs
4 and a disjoint ceiling group).

Argument (optional): `settings=a+b` (names of `SETTINGS`; default all), `quick` (two tiny
settings for the tests).
"""

from __future__ import annotations

import ml_collections

from experiments.configs import train
from experiments.configs.common import NAMED_SETTINGS, apply_overrides, parse_arg

ARG_KEYS = ("settings", "quick")

# name -> (config argument of train.py, field overrides)
SETTINGS = {
    # The default until now: memorises little (train acc ~ test + 3 pp).
    "mnist5k_cnn": ("dataset=mnist5k,model=cnn,width=0.5,epochs=12", {}),
    "mnist5k_cnn_nowd_30ep": ("dataset=mnist5k,model=cnn,width=0.5,epochs=30",
                              {"train.weight_decay": 0.0}),
    "mnist5k_mlp_30ep": ("dataset=mnist5k,model=mlp,epochs=30",
                         {"train.weight_decay": 0.0, "train.model_axis": "vmap"}),
    "mnist5k_mlp_1k_train": ("dataset=mnist5k,model=mlp,epochs=60",
                             {"train.weight_decay": 0.0, "train.model_axis": "vmap",
                              "data.max_train_examples": 1000}),
    "mnist1d_mlp": ("dataset=mnist1d,model=mlp,epochs=40", {}),
    "mnist1d_mlp_wd": ("dataset=mnist1d,model=mlp,epochs=40", {"train.weight_decay": 5e-4}),
    "mnist1d_cnn": ("dataset=mnist1d,model=cnn,width=0.5,epochs=40", {"train.weight_decay": 0.0}),
    "mnist1d_cnn_w1_2k": NAMED_SETTINGS["conv"],  # `setting=conv` in the other configs
}
QUICK = {
    "digits_mlp": ("dataset=digits,model=mlp,epochs=2", {}),
    "digits_mlp_nowd": ("dataset=digits,model=mlp,epochs=2", {"train.weight_decay": 0.0}),
}


def setting_config(arg: str, overrides: dict, seeds: int, oracle_seeds: int):
  config = train.get_config(f"{arg},seeds={seeds},oracle_seeds={oracle_seeds}")
  apply_overrides(config, overrides)
  return config


def get_config(arg: str | None = None):
  opts = parse_arg(arg, ARG_KEYS)
  quick = opts.get("quick", "false").lower() in ("1", "true", "yes", "")
  table = QUICK if quick else SETTINGS
  names = opts["settings"].split("+") if "settings" in opts else list(table)
  unknown = [n for n in names if n not in table]
  if unknown:
    raise ValueError(f"unknown setting(s) {unknown}; choose from {', '.join(table)}")
  seeds, oracle = (2, 4) if quick else (4, 8)
  config = ml_collections.ConfigDict()
  config.settings = ml_collections.ConfigDict(
      {n: setting_config(*table[n], seeds, oracle) for n in names})
  config.progress = True
  for key in ("deterministic", "matmul_precision", "compilation_cache"):
    config[key] = config.settings[names[0]][key]
  return config
