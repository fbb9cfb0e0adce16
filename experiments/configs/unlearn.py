"""python -m experiments.unlearn --config=experiments/configs/unlearn.py --workdir=DIR

Config of `experiments.unlearn` (the main job) and of `experiments.tune` (same file:
`python -m experiments.tune --config=experiments/configs/unlearn.py:methods=ga+neggrad
--workdir=DIR`): reference models, unlearning methods, evaluation, tuning.

Argument (optional): `key=value` pairs separated by commas; the keys of `train.py` (dataset,
model, width, forget, seeds, oracle_seeds, epochs) plus `methods`, a `+`-separated list of method
names (or `all`), e.g.

  --config=experiments/configs/unlearn.py:dataset=digits,seeds=2,methods=finetune+neggrad_plus

The data/forget/model/train/seeds/oracle_seeds sections are those of `train.py`, so a workdir
made by `experiments.train` is reused as is (its `original` and `oracle` groups are not
retrained).

`method_configs.<name>` holds every hyperparameter of each configured method (its module's
DEFAULTS with the values of the selected recipe, `recipe=fast` (default: our small-scale values,
with the dataset's tuned `METHOD_PRESETS`) or `recipe=official` (the public code's procedure and
numbers, each with its source; `experiments/configs/recipes.py`, table in docs/recipes.md)), so
any of them can be overridden on the command line, e.g.
`--config.method_configs.finetune.epochs=5`; the report names the recipe of every method and
the fields changed from it (`recipe_values` keeps the recipe's own values).
`single_gradient.visits` is set to the training epochs (n of Thudi et al.: how often D_f was
visited). `retrain` is not in the default list: the `oracle` group already is the retrain
oracle. Listing it trains a second, independent group of retrained models (fresh keys), with the
recipe of `config.train` unless `method_configs.retrain` says otherwise. `tune` is the search
space and objective of `python -m experiments.tune` (validation-based tuning,
`30-overparam.md` §5).
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict

from experiments.configs import recipes
from experiments.configs.common import base_config, parse_arg

ARG_KEYS = ("dataset", "model", "width", "forget", "seeds", "oracle_seeds", "epochs", "setting",
            "methods", "recipe", "shadows")

# Every registered method except `retrain` (the oracle group is the retrain oracle).
DEFAULT_METHODS = ("finetune", "ga", "neggrad", "neggrad_plus", "random_label", "salun",
                   "l1_sparse", "scrub", "ssd", "bad_teacher", "amnesiac", "single_gradient",
                   "del")
# Hyperparameters of `retrain` that default to the `train` section's recipe.
RETRAIN_FROM_TRAIN = {"epochs": int, "batch_size": int, "learning_rate": float, "momentum": float,
                      "weight_decay": float, "schedule": str, "final_lr_fraction": float}


def parse_methods(value: str) -> tuple[str, ...]:
  """`ga+finetune` -> ("ga", "finetune"); `all` -> every method but `retrain`. An entry with a
  dot is a user method's import path (`mypkg.mymethod`): imported, registered, and replaced by
  its name (`user_methods` gives the paths)."""
  return _split_methods(value)[0]


def user_methods(value: str) -> dict[str, str]:
  """name -> import path of the user methods in a `methods=` value."""
  return _split_methods(value)[1]


def _split_methods(value: str) -> tuple[tuple[str, ...], dict[str, str]]:
  from unlearn_jax import methods as methods_lib
  specs = tuple(n.strip() for n in value.split("+") if n.strip())
  if specs == ("all",):
    return DEFAULT_METHODS, {}
  unknown = [n for n in specs if n not in methods_lib.method_names() and "." not in n]
  if unknown or not specs:
    raise ValueError(f"unknown unlearning method(s) {unknown or value!r}; choose from "
                     f"{', '.join(methods_lib.method_names())} or give your own method's import "
                     f"path (separate several with '+')")
  names, paths = [], {}
  for spec in specs:
    name = methods_lib.resolve(spec)
    names.append(name)
    if name != spec:
      paths[name] = spec
  return tuple(names), paths


def method_config(name: str, dataset: str | None = None, recipe: str = "fast",
                  model: str | None = None) -> ml_collections.ConfigDict:
  """The method's DEFAULTS with the values of `recipe` on `dataset` (`recipes.recipe_values`),
  as a ConfigDict (placeholders for `retrain`'s recipe fields, which follow `config.train`).

  A module that cannot be imported yields an empty entry; running it then fails with the import
  error, recorded as that method's result.
  """
  if name == "retrain":
    return ml_collections.ConfigDict({k: config_dict.placeholder(t)
                                      for k, t in RETRAIN_FROM_TRAIN.items()})
  from unlearn_jax.methods import get_method
  try:
    defaults = dict(get_method(name).DEFAULTS)
  except ImportError:
    return ml_collections.ConfigDict({})
  return ml_collections.ConfigDict(recipes.recipe_values(name, dataset, recipe, defaults, model))


def eval_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      batch_size=1000,          # inference batch for the saved logits
      mia_splits=5,             # k of the stratified k-fold in mia_loss_lr
      mia_seed=0,               # subsampling / fold seed of both MIAs
      svc_features=("confidence", "entropy", "m_entropy", "prob", "correctness"),
      fq=True,                  # forgetting quality (N unlearned vs N oracle seeds) + ceiling
      plots=True,               # PNG plots next to report.md
      hist_examples=3,          # forget examples shown in the confidence histograms
      workers=0,                # processes for the per-model metrics (0: one per core, <= 8)
  ))


# Default search spaces of `python -m experiments.tune` (`30-overparam.md` §5), for the knob that
# decides how hard each method pushes; a grid for any other hyperparameter can be given on the
# command line, e.g. --config.tune.space.ga.epochs='(2, 5)' (for `del`, a Python keyword:
# '--config.tune.space["del"].alpha=(0.1, 0.3)', quoted for the shell). single_gradient: η with n = visits fixed, i.e.
# the scale n·η of the update.
TUNE_SPACES = {
    "finetune": {"learning_rate": (0.01, 0.02, 0.05, 0.1)},
    "ga": {"learning_rate": (0.001, 0.002, 0.005, 0.01, 0.02)},
    "neggrad": {"learning_rate": (0.001, 0.002, 0.005, 0.01, 0.02)},
    "neggrad_plus": {"beta": (0.9, 0.95, 0.99)},
    "single_gradient": {"learning_rate": (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02)},
    "ssd": {"selection": (1.0, 2.0, 5.0, 10.0)},
    "del": {"learning_rate": (0.01, 0.02, 0.05)},
}


def tune_space(name: str) -> ml_collections.ConfigDict:
  """Method `name`'s search space: `TUNE_SPACES` grids, and an unset tuple placeholder for every
  other hyperparameter, so the command line can add a grid for any of them."""
  fields = {k: config_dict.placeholder(tuple) for k in method_config(name).keys()}
  from unlearn_jax.methods import get_method, is_user_method
  space = (getattr(get_method(name), "TUNE_SPACE", {}) if is_user_method(name) else
           TUNE_SPACES.get(name, {}))
  fields.update({k: tuple(v) for k, v in space.items()})
  return ml_collections.ConfigDict(fields)


def tune_config(methods) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      goal="privacy",          # privacy | bias (tuning objective, unlearn_jax/tuning.py)
      lam=0.4,                 # λ of the objective (the paper shows 0.2, 0.4, 0.6)
      space={m: tune_space(m) for m in methods},
  ))


def shadows_config(num: int = 0) -> ml_collections.ConfigDict:
  """Shadow models (`python -m experiments.shadow_eval`, `python -m experiments.memorization`,
  `unlearn_jax/pipelines/shadows.py`): `num` = K half-data models (0 = off; `shadows=64` in the
  config argument), each of which forgets `forget_size` examples of its half drawn from a fixed
  `pool`; the last `targets` models are U-LiRA's held-out targets."""
  return ml_collections.ConfigDict(dict(
      num=num,                   # K shadow models (even for complement_pairs); 0 = off
      design="complement_pairs", # complement_pairs (halves + complements) | independent
      seed=0,                    # the halves, the pool and the per-model forget sets
      pool=720,                  # forgettable pool (examples of the training set)
      forget_size=180,           # per-model forget set, drawn from its half ∩ pool
      pool_scores="",            # '' = a random pool; a memorization.npz = the pool by score
      pool_level="high",         # with pool_scores: high | mid | low | mixed (RUM's levels)
      targets=max(1, num // 8),  # held-out U-LiRA targets (the last models)
      fix_variance=True,         # pooled σ per side (LiRA's advice for few shadows)
      cap=300,                   # models per side and example, at most
      methods=(),                # methods to evaluate; () = the main job's (config.methods)
      model_chunk=-1,            # models per chunk in training: -1 = 8 on CPU, all on GPU/TPU
  ))


def get_config(arg: str | None = None):
  opts = parse_arg(arg, ARG_KEYS)
  shadows = int(opts.pop("shadows", 0))
  methods, paths = _split_methods(opts.pop("methods")) if "methods" in opts else (
      DEFAULT_METHODS, {})
  config = base_config(opts)
  config.methods = methods
  # Your own methods by import path (methods=finetune+mypkg.mymethod): every launcher process
  # imports and registers them from here (unlearn_jax.methods.register).
  config.user_methods = ml_collections.ConfigDict(paths)
  recipe = opts.get("recipe", "fast")
  if recipe not in recipes.RECIPES:
    raise ValueError(f"unknown recipe '{recipe}'; choose one of {', '.join(recipes.RECIPES)}")
  config.recipe = recipe
  config.method_configs = ml_collections.ConfigDict(
      {m: method_config(m, config.data.name, recipe, config.model.name) for m in methods})
  if "visits" in config.method_configs.get("single_gradient", {}):
    # n of Thudi et al.: how often training visited D_f, i.e. the reference training's epochs
    config.method_configs.single_gradient.visits = config.train.epochs
    # B of the original training: the fixed form's |D_f|/B scale (20-unroll.md §3)
    config.method_configs.single_gradient.train_batch_size = config.train.batch_size
  # The recipe's own values, kept so the report can name the fields changed from it.
  config.recipe_values = ml_collections.ConfigDict(config.method_configs.to_dict())
  config.eval = eval_config()
  config.tune = tune_config(methods)
  config.shadows = shadows_config(shadows)
  return config
