"""python -m experiments.memorization --config=experiments/configs/memorization.py --workdir=DIR

Config of `experiments.memorization`: K half-data models of the main job's setting (data, model,
training recipe of `experiments/configs/unlearn.py`) trained in one program, then Feldman-Zhang
memorisation scores, the confidence proxy and their rank correlation
(`unlearn_jax/pipelines/shadows.py`). Writes DIR/memorization.npz, the scores file of
`--config.forget.kind=memorization` (with `forget=memorization` in the config argument:
`--config=experiments/configs/unlearn.py:forget=memorization --config.forget.scores=DIR/memorization.npz`).

Argument (optional): `shadows=K` (default 128: about 64 models in and 64 out per example, a
standard error of the score of at most ~0.09), `quick` (digits, 8 models, 3 epochs: the tests),
and the keys of `unlearn.py` (dataset, model, width, epochs, ...).
"""

from __future__ import annotations

from experiments.configs import unlearn


def get_config(arg: str | None = None):
  parts = [p.strip() for p in (arg or "").split(",") if p.strip()]
  quick = "quick" in parts or "quick=true" in parts
  parts = [p for p in parts if p not in ("quick", "quick=true")]
  keys = {p.split("=", 1)[0] for p in parts}
  if quick:
    parts += [p for p in ("dataset=digits", "epochs=3", "seeds=2", "shadows=8")
              if p.split("=", 1)[0] not in keys]
  elif "shadows" not in keys:
    parts.append("shadows=128")
  config = unlearn.get_config(",".join(parts + ["methods=finetune"]))
  if quick:
    config.model.width = 0.25
  return config
