"""Config of `python -m experiments.train`: the original model and the retrain oracle.

Argument (optional): `key=value` pairs separated by commas, keys dataset, model, width, forget,
seeds, epochs, e.g. `--config=experiments/configs/train.py:dataset=digits,model=mlp,seeds=2`.
"""

from experiments.configs.common import base_config, parse_arg

ARG_KEYS = ("dataset", "model", "width", "forget", "seeds", "epochs")


def get_config(arg: str | None = None):
  return base_config(parse_arg(arg, ARG_KEYS))
