"""Check a whole experiment config before anything is written (the launchers' front door).

  check_process_options(config)                   reproducibility/cache options (before JAX starts)
  plan(config, methods=..., tune=...) -> Plan     every section; loads the data and builds the
                                                  forget set and model in memory, writes nothing

Every problem raises `unlearn_jax.errors.ConfigError` with one line that names the field and how
to fix it, e.g. `config.train.epochs must be an integer >= 1, got -3; set
--config.train.epochs=12`. Numbers are checked for type, range and finiteness; class ids against
the dataset; seeds for uniqueness; every method's hyperparameters through the method's own
`check_config` (with the real forget/retain sizes); the tuning goal, λ and search spaces.
Errors raised by the kernels while building the data, forget set or model are re-raised as
`ConfigError`s that name the section.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from typing import Any, Iterator, Sequence

import jax
import numpy as np

from unlearn_jax import io, tuning
from unlearn_jax.data import Dataset, ForgetSet, build_forget_set, load_dataset
from unlearn_jax.data.datasets import DATASETS
from unlearn_jax.data.forget import (FORGET_KINDS, MEMORIZATION_LEVELS, MID_CENTERS, SCORES_HELP,
                                     load_memorization_scores, scores_sha256)
from unlearn_jax.errors import ConfigError, UserError
from unlearn_jax.methods import (check_method_config, get_method, merged_config, method_names,
                                 register as register_method)
from unlearn_jax.methods.base import UnlearnData
from unlearn_jax.methods.common import is_int, is_real
from unlearn_jax.metrics.mia import SVC_FEATURES
from unlearn_jax.models import INITS, MODELS, NORMS, Model, build_model_from_config
from unlearn_jax.train import MODEL_AXIS_STRATEGIES, SCHEDULES

# Fields of `config.train` that `retrain` takes unless `method_configs.retrain` overrides them.
RETRAIN_RECIPE = ("epochs", "batch_size", "learning_rate", "momentum", "weight_decay", "schedule",
                  "final_lr_fraction")
PRECISIONS = ("default", "high", "highest", "bfloat16", "tensorfloat32", "float32")
PARALLELISM = ("data", "models", "none")


@dataclasses.dataclass(frozen=True)
class Plan:
  """What a valid config describes, built in memory (nothing written yet)."""
  dataset: Dataset
  forget_set: ForgetSet
  model: Model
  forget_meta: dict
  hparams: dict  # method name -> resolved hyperparameters, or the ImportError of its module


# ----------------------------------------------------------------------------------------------
# Field checks.


def _get(config, path: str):
  node = config
  for part in path.split("."):
    try:
      node = node[part]
    except (KeyError, TypeError, AttributeError):
      raise ConfigError(f"config.{path} is missing; use a config from experiments/configs/ "
                        "(it defines every field)") from None
  return node


def _fail(path: str, want: str, value: Any, example: Any) -> None:
  raise ConfigError(f"config.{path} must be {want}, got {value!r}; set e.g. "
                    f"--config.{path}={example}")


def check_int(config, path: str, lo: int, example: int, *, optional: bool = False) -> None:
  v = _get(config, path)
  if optional and v is None:
    return
  if not (is_int(v) and v >= lo):
    _fail(path, f"an integer >= {lo}", v, example)


def check_real(config, path: str, lo: float, hi: float, example: float, *,
               lo_open: bool = False, hi_open: bool = False) -> None:
  v = _get(config, path)
  ok = is_real(v) and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
  if not ok:
    interval = (("(" if lo_open else "[") + f"{lo:g}, " + ("inf" if hi == math.inf else f"{hi:g}")
                + (")" if hi_open or hi == math.inf else "]"))
    _fail(path, f"a finite number in {interval}", v, example)


def check_choice(config, path: str, choices: Sequence[str]) -> None:
  v = _get(config, path)
  if v not in choices:
    raise ConfigError(f"config.{path} must be one of {', '.join(map(str, choices))}, got "
                      f"{v!r}; set e.g. --config.{path}={choices[0]}")


def check_bool(config, path: str) -> None:
  v = _get(config, path)
  if not isinstance(v, (bool, np.bool_)):
    _fail(path, "True or False", v, True)


def check_seeds(config, path: str, *, optional: bool = False) -> None:
  v = _get(config, path)
  if optional and not v:
    return
  values = list(v) if isinstance(v, (tuple, list)) else None
  if not values:
    raise ConfigError(f"config.{path} must list at least one seed, got {v!r}; set e.g. "
                      f"--config.{path}=0,1,2 (or seeds=N in the config argument)")
  bad = [s for s in values if not (is_int(s) and s >= 0)]
  if bad:
    raise ConfigError(f"config.{path} must hold integers >= 0, got {bad!r}; set e.g. "
                      f"--config.{path}=0,1,2")
  if len(set(values)) != len(values):
    raise ConfigError(f"config.{path} lists a seed twice: {values}; give distinct seeds, e.g. "
                      f"--config.{path}={','.join(map(str, range(len(values))))}")


@contextlib.contextmanager
def section(path: str, hint: str = "") -> Iterator[None]:
  """Re-raise a kernel's ValueError/TypeError inside as a ConfigError naming `config.<path>`."""
  try:
    yield
  except UserError as e:
    if str(e).startswith("config."):
      raise
    raise type(e)(_one_line(f"config.{path}: {e}", hint)) from e
  except (ValueError, TypeError) as e:
    raise ConfigError(_one_line(f"config.{path}: {e}", hint)) from e


def _one_line(message: str, hint: str) -> str:
  message = " ".join(message.split()).rstrip(".")
  if hint and ";" not in message:
    message += f"; {hint}"
  return message


# ----------------------------------------------------------------------------------------------
# Defaults resolved from the config.


def default_oracle_seeds(seeds) -> tuple[int, ...]:
  """Twice as many oracle seeds as `seeds`: the seeds themselves, then as many new ones."""
  seeds = tuple(int(s) for s in seeds)
  start = max(seeds) + 1
  return seeds + tuple(range(start, start + len(seeds)))


def resolve_oracle_seeds(config) -> None:
  """Set `config.oracle_seeds` to `default_oracle_seeds(config.seeds)` when it is unset."""
  if not config.get("oracle_seeds"):
    config.oracle_seeds = default_oracle_seeds(config.seeds)


def _plain(value) -> dict:
  if value is None:
    return {}
  return dict(value.to_dict() if hasattr(value, "to_dict") else value)


def method_overrides(config, name: str) -> dict:
  """The user's hyperparameters of method `name` (unset placeholders dropped).

  `retrain` defaults to the reference recipe of `config.train`.
  """
  configs = config.get("method_configs") or {}
  overrides = {k: v for k, v in _plain(configs.get(name)).items() if v is not None}
  if name == "retrain":
    overrides = {**{k: config.train[k] for k in RETRAIN_RECIPE}, **overrides}
  return overrides


def resolve_methods(config) -> dict[str, Any]:
  """name -> resolved hyperparameters (dict), or the exception importing the module raised.

  Raises a `ConfigError` on an unknown method name, a duplicate, an entry of `method_configs`
  naming an unknown method, or an unknown hyperparameter.
  """
  for name, path in _plain(config.get("user_methods")).items():
    with section(f"user_methods.{name}", "give your method's import path as methods=a+pkg.mod"):
      register_method(name, path)
  names = tuple(_get(config, "methods"))
  unknown = [n for n in names if n not in method_names()]
  if unknown:
    raise ConfigError(f"unknown unlearning method(s) {unknown} in config.methods; choose from "
                      f"{', '.join(method_names())}, or give your own method's import path "
                      f"(methods=a+pkg.mod in the config argument)")
  if not names:
    raise ConfigError("config.methods is empty; name at least one method, e.g. "
                      "methods=finetune+ga in the config argument")
  if len(set(names)) != len(names):
    raise ConfigError(f"config.methods lists a method twice: {list(names)}; list each once")
  stray = [n for n in _plain(config.get("method_configs")) if n not in method_names()]
  if stray:
    raise ConfigError(f"config.method_configs has entries for unknown method(s) {stray}; choose "
                      f"from {', '.join(method_names())}")
  resolved: dict[str, Any] = {}
  for name in names:
    try:
      defaults = get_method(name).DEFAULTS
    except ImportError as e:  # recorded as this method's failure, the others still run
      resolved[name] = e
      continue
    with section(f"method_configs.{name}", _method_hint(name)):
      resolved[name] = merged_config(name, defaults, method_overrides(config, name))
  return resolved


def _key(name: str) -> str:
  """How a method's entry follows its section on the command line (`del` is a Python keyword,
  so it must be subscripted: `--config.method_configs["del"].alpha`)."""
  return '["del"]' if name == "del" else f".{name}"


def _method_hint(name: str) -> str:
  return f"set it with --config.method_configs{_key(name)}.<hyperparameter>=VALUE"


def method_space(config, name: str) -> dict[str, list]:
  """The declared search space of method `name` (a `ConfigError` if there is none or a name in
  it is not one of the method's hyperparameters)."""
  spaces = config.tune.get("space") or {}
  space = {k: v for k, v in _plain(spaces.get(name)).items() if v is not None}
  if not space:
    raise ConfigError(f"no tuning space for method '{name}'; set e.g. "
                      f"--config.tune.space.{name}.learning_rate='(0.01, 0.02)'")
  defaults = get_method(name).DEFAULTS
  unknown = sorted(set(space) - set(defaults))
  if unknown:
    raise ConfigError(f"tuning space of '{name}' names unknown hyperparameter(s) {unknown}; "
                      f"it accepts {sorted(defaults)}")
  return space


# ----------------------------------------------------------------------------------------------
# Sections.


def check_process_options(config) -> None:
  """The options applied to the process before JAX starts (`unlearn_jax.runtime`)."""
  for key in ("deterministic", "progress", "distributed"):
    if key in config:
      check_bool(config, key)
  if config.get("matmul_precision") is not None:
    check_choice(config, "matmul_precision", PRECISIONS)
  cache = config.get("compilation_cache")
  if cache is not None and not isinstance(cache, str):
    _fail("compilation_cache", "a folder path or '' (disabled)", cache, "''")


def check_fields(config, *, methods: bool) -> None:
  """Types and ranges of every field that needs no data to check."""
  check_process_options(config)
  check_seeds(config, "seeds")
  check_seeds(config, "oracle_seeds", optional=True)
  name = _get(config, "data.name")
  if not (isinstance(name, str) and name):
    _fail("data.name", "a dataset name (mnist5k, digits or a TFDS name)", name, "mnist5k")
  data_dir = _get(config, "data.data_dir")
  if data_dir is not None and not isinstance(data_dir, str):
    _fail("data.data_dir", "a folder path", data_dir, "~/tensorflow_datasets")
  check_real(config, "data.validation_fraction", 0, 1, 0.1, hi_open=True)
  check_real(config, "data.test_fraction", 0, 1, 0.2, lo_open=True, hi_open=True)
  check_int(config, "data.split_seed", 0, 0)
  check_int(config, "data.max_train_examples", 1, 1000, optional=True)

  check_choice(config, "forget.kind", FORGET_KINDS)
  kind = config.forget.kind
  if kind in ("iid", "non_iid", "memorization"):
    check_real(config, "forget.fraction", 0, 1, 0.1, lo_open=True)
  if kind in ("iid", "memorization"):
    check_int(config, "forget.count", 1, 100, optional=True)
  if kind == "memorization":
    check_memorization_fields(config)
  if kind in ("non_iid", "classwise"):
    classes = _get(config, "forget.classes")
    if not (isinstance(classes, (tuple, list)) and classes
            and all(is_int(c) and c >= 0 for c in classes)):
      _fail("forget.classes", "a non-empty list of class ids >= 0", classes, "2,5")
  if kind == "confusion":
    check_int(config, "forget.class_a", 0, 3)
    check_int(config, "forget.class_b", 0, 8)
    check_int(config, "forget.num_examples", 2, 200)
    if config.forget.class_a == config.forget.class_b:
      raise ConfigError(f"config.forget.class_a and class_b must differ, both are "
                        f"{config.forget.class_a}; set e.g. --config.forget.class_b=8")
  check_int(config, "forget.seed", 0, 0)

  check_choice(config, "model.name", MODELS)
  check_real(config, "model.width", 0, math.inf, 1.0, lo_open=True)
  if "norm" in config.model:
    check_choice(config, "model.norm", NORMS)
  if "init" in config.model:
    check_choice(config, "model.init", INITS)

  check_int(config, "train.epochs", 1, 12)
  check_int(config, "train.batch_size", 1, 64)
  check_real(config, "train.learning_rate", 0, math.inf, 0.1, lo_open=True)
  check_real(config, "train.momentum", 0, 1, 0.9, hi_open=True)
  check_real(config, "train.weight_decay", 0, math.inf, 5e-4)
  check_choice(config, "train.schedule", SCHEDULES)
  check_real(config, "train.final_lr_fraction", 0, 1, 0.0)
  check_int(config, "train.eval_batch_size", 1, 1000)
  check_int(config, "train.checkpoint_every", 1, 1)
  check_choice(config, "train.parallelism", PARALLELISM)
  check_choice(config, "train.model_axis", MODEL_AXIS_STRATEGIES)

  if methods:
    check_int(config, "eval.batch_size", 1, 1000)
    check_int(config, "eval.mia_splits", 2, 5)
    check_int(config, "eval.mia_seed", 0, 0)
    check_svc_features(config)
    check_bool(config, "eval.fq")
    check_bool(config, "eval.plots")
    check_int(config, "eval.hist_examples", 0, 3)
    check_int(config, "eval.workers", 0, 0)
    check_choice(config, "tune.goal", tuning.GOALS)
    check_real(config, "tune.lam", 0, 1, 0.4)


def check_svc_features(config, path: str = "eval.svc_features") -> None:
  features = _get(config, path)
  if not (isinstance(features, (tuple, list)) and features
          and all(f in SVC_FEATURES for f in features)):
    _fail(path, f"a list drawn from {', '.join(SVC_FEATURES)}", features, "confidence,entropy")


# The fields a `memorization` forget set adds to `config.forget` (experiments/configs/common.py
# `forget_config("memorization")`, i.e. forget=memorization in the config argument).
MEMORIZATION_FIELDS = ("level", "mid_center", "scores")


def check_memorization_fields(config) -> None:
  """`config.forget.level`, `mid_center` and `scores` of a memorization forget set (the scores
  file itself is read, with the training set's size, in `build_forget`)."""
  for key in MEMORIZATION_FIELDS:
    if key not in config.forget:
      raise ConfigError(f"config.forget.{key} is missing (a memorization forget set needs "
                        f"{', '.join(MEMORIZATION_FIELDS)}); pass forget=memorization in the "
                        "config argument instead of --config.forget.kind=memorization")
  check_choice(config, "forget.level", MEMORIZATION_LEVELS)
  check_choice(config, "forget.mid_center", MID_CENTERS)
  scores = config.forget.scores
  if scores is None or scores == "":
    raise ConfigError(f"config.forget.scores is unset (a memorization forget set needs a "
                      f"scores file); {SCORES_HELP}")
  if not isinstance(scores, str):
    _fail("forget.scores", "the path of a memorization scores .npz", scores,
          "DIR/memorization.npz")


def load_data(config) -> Dataset:
  """The dataset of `config.data` (a `DatasetNotPreparedError` keeps its own fix)."""
  d = config.data
  bundled = d.name in DATASETS
  with section("data" if bundled else "data.name",
               "" if bundled else "pass dataset=NAME in the config argument"):
    return load_dataset(d.name, data_dir=d.data_dir, validation_fraction=d.validation_fraction,
                        test_fraction=d.test_fraction, split_seed=d.split_seed,
                        max_train_examples=d.max_train_examples)


def forget_meta(config) -> dict:
  """What a stored forget set must have been built from (compared on reuse).

  For a `memorization` forget set this includes the SHA-256 of the scores (`scores_sha256`), so
  a scores file rewritten in place (same `config.forget.scores` path) is not silently reused.
  """
  meta = {"data": io.to_jsonable(config.data), "forget": io.to_jsonable(config.forget)}
  if config.forget.get("kind") == "memorization":
    meta["memorization_scores_sha256"] = _scores_digest(config.forget.scores)
  return meta


def _scores_digest(path: str) -> str:
  with section("forget.scores"):
    with np.load(os.path.expanduser(path), allow_pickle=False) as data:
      return scores_sha256(data["score"])


def build_forget(config, dataset: Dataset) -> ForgetSet:
  f = config.forget
  num_classes = dataset.num_classes
  ids = {"non_iid": ("classes",), "classwise": ("classes",),
         "confusion": ("class_a", "class_b")}.get(f.kind, ())
  for key in ids:
    values = list(f[key]) if key == "classes" else [f[key]]
    bad = [c for c in values if c >= num_classes]
    if bad:
      raise ConfigError(f"config.forget.{key} holds class id(s) {bad} outside the "
                        f"{num_classes} classes of {dataset.name}; use ids in [0, "
                        f"{num_classes - 1}]")
  memorization: dict = {}
  if f.kind == "memorization":
    with section("forget.scores"):
      scores = load_memorization_scores(f.scores, len(dataset.train.y), dataset=config.data.name,
                                        labels=dataset.train.y)
    memorization = dict(scores=scores.score, level=f.level, mid_center=f.mid_center)
  with section("forget", "change config.forget (kind, fraction, count, classes, num_examples)"):
    # an iid/memorization `count` replaces the fraction (config: "exact count instead of
    # fraction")
    fraction = (None if f.kind in ("iid", "memorization") and f.count is not None
                else f.fraction)
    return build_forget_set(f.kind, dataset.train.y, seed=f.seed, fraction=fraction,
                            count=f.count, classes=tuple(f.classes), class_a=f.class_a,
                            class_b=f.class_b, num_examples=f.num_examples, **memorization)


def check_parallelism(config, devices: int) -> None:
  """Under `train.parallelism=models` every reference group's seeds split evenly over `devices`."""
  if config.train.parallelism != "models" or devices == 1:
    return
  for path in ("seeds", "oracle_seeds"):
    n = len(config[path])
    if n % devices:
      raise ConfigError(f"config.{path} has {n} seeds, not divisible by the {devices} devices "
                        f"that train.parallelism=models splits them over; use a multiple of "
                        f"{devices} seeds or --config.train.parallelism=data")


def check_batch_sizes(config, num_retain: int) -> None:
  b = config.train.batch_size
  if b > num_retain:
    raise ConfigError(f"config.train.batch_size = {b} exceeds the {num_retain} examples the "
                      f"oracle trains on; set e.g. --config.train.batch_size="
                      f"{min(64, num_retain)}")


def plan(config, *, methods: bool = False, tune: bool = False) -> Plan:
  """Check every section of `config` and build its data, forget set, model and method settings
  in memory. Writes nothing. `methods`: the config has methods/method_configs/eval/tune
  sections (the unlearning and tuning launchers); `tune`: check the tuning spaces too."""
  check_fields(config, methods=methods)
  resolve_oracle_seeds(config)
  check_seeds(config, "oracle_seeds")
  check_parallelism(config, jax.device_count())
  dataset = load_data(config)
  forget_set = build_forget(config, dataset)
  check_batch_sizes(config, len(forget_set.retain_indices()))
  with section("model"):
    model = build_model_from_config(config.model.to_dict(), dataset.num_classes)
  hparams: dict = {}
  if methods:
    hparams = check_methods(config, dataset, forget_set, model, tune=tune)
  return Plan(dataset=dataset, forget_set=forget_set, model=model, forget_meta=forget_meta(config),
              hparams=hparams)


def check_methods(config, dataset: Dataset, forget_set: ForgetSet, model: Model, *,
                  tune: bool) -> dict:
  """Resolve every method's hyperparameters and run its own checks on the real data sizes."""
  hparams = resolve_methods(config)
  f, r = forget_set.indices, forget_set.retain_indices()
  labels = forget_set.train_labels
  data = UnlearnData(retain_x=dataset.train.x[r], retain_y=labels[r],
                     forget_x=dataset.train.x[f], forget_y=labels[f],
                     num_classes=dataset.num_classes, model=model,
                     image_shape=dataset.image_shape, model_axis=config.train.model_axis)
  for name, hp in hparams.items():
    if isinstance(hp, Exception):
      continue  # an import failure is that method's recorded result, not a config error
    with section(f"method_configs.{name}", _method_hint(name)):
      check_method_config(name, hp, data)
  if tune:
    if len(dataset.validation.y) == 0:
      raise ConfigError("tuning needs a validation split, but config.data.validation_fraction "
                        "is 0; set e.g. --config.data.validation_fraction=0.1")
    for name in hparams:
      space = method_space(config, name)
      hint = f"fix the grid --config.tune.space{_key(name)}.<hyperparameter>"
      with section(f"tune.space.{name}", hint):
        points = tuning.grid(space)
      for point in points:
        with section(f"tune.space.{name}", hint):
          check_method_config(name, {**hparams[name], **point}, data)
  return hparams

