"""python -m experiments.train --config=experiments/configs/train.py --workdir=DIR

Config of `experiments.train`: the original model and the retrain oracle.

Argument (optional): `key=value` pairs separated by commas, keys dataset, model, width, forget,
seeds, oracle_seeds, epochs, e.g.
`--config=experiments/configs/train.py:dataset=digits,model=mlp,seeds=2`.

`seeds=N` trains N original models; the oracle group gets `oracle_seeds` models (default 2N,
resolved when the run starts, so that the unlearning report can show the oracle-vs-oracle
forgetting-quality ceiling at N models; `oracle_seeds=N` halves its cost, and the ceiling then
uses halves of N // 2 models, or is left out for N < 6).
"""

from experiments.configs.common import base_config, parse_arg

ARG_KEYS = ("dataset", "model", "width", "forget", "seeds", "oracle_seeds", "epochs", "setting")


def get_config(arg: str | None = None):
  return base_config(parse_arg(arg, ARG_KEYS))
