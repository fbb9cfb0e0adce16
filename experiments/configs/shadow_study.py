"""python -m experiments.shadow_study --config=experiments/configs/shadow_study.py --workdir=DIR

Config of `experiments.shadow_study` (`unlearn_jax/pipelines/shadow_study.py`): a memorisation
bank, then U-LiRA and KLOM for every method on a random (IID) pool and on RUM's high / mid / low
memorisation pools, and RUM's claim checked with the thresholds below (stated before the run).

The main job's setting and methods (`experiments/configs/unlearn.py`: MNIST-1D, MLP, 40 epochs,
every method's preset) with `shadows=64`. Argument (optional): `quick` (digits, 8 models, 2
methods, 2 epochs: the tests) and the keys of `unlearn.py` (dataset, methods, shadows, ...).
"""

from __future__ import annotations

import ml_collections

from experiments.configs import unlearn


def get_config(arg: str | None = None):
  parts = [p.strip() for p in (arg or "").split(",") if p.strip()]
  quick = "quick" in parts or "quick=true" in parts
  parts = [p for p in parts if p not in ("quick", "quick=true")]
  keys = {p.split("=", 1)[0] for p in parts}
  defaults = (("dataset=digits", "epochs=2", "seeds=2", "shadows=8", "methods=finetune+ga")
              if quick else ("shadows=64",))
  parts += [p for p in defaults if p.split("=", 1)[0] not in keys]
  config = unlearn.get_config(",".join(parts))
  if quick:
    config.model.width = 0.25
    config.shadows.update(pool=200, forget_size=40, targets=2)
  config.study = ml_collections.ConfigDict(dict(
      kinds=("high", "low") if quick else ("iid", "high", "mid", "low"),
      bank_seed=config.shadows.seed + 1,   # the bank whose scores choose the pools
      claim=dict(
          z=2.0,          # a method finds `high` harder: mean gap difference > z standard errors
          min_share=0.5,  # held if more than this share of the methods do
          min_gap=0.05,   # the relative gap needs the original >= this far from the oracle
      ),
  ))
  return config
