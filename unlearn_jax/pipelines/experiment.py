"""The setup every experiment shares: a checked config, a usable workdir, data, forget set, model.

  setup(config, workdir, methods=..., tune=...) -> Experiment

Order (so that bad input never changes the workdir): the whole config is checked and its data,
forget set and model are built in memory (`validate.plan`); then the workdir is checked without
writing (not a file, writable, its config.json and forget_set.npz readable and made with the
same config); only then are config.json and forget_set.npz written. A workdir whose recorded
config differs is refused only if it holds computed results (`layout.Workdir.holds_results`);
one with nothing computed (e.g. left by a run that stopped on an error) takes the new config.

The reference groups are `original` (trained on the whole training set, with the forget set's
training labels, i.e. the swapped ones for a `confusion` forget set) and `oracle` (trained from
a fresh initialization on the retain set with the same recipe: the retrain oracle). `original`
has one model per `config.seeds`, `oracle` one per `config.oracle_seeds` (default: twice as many,
so that the report can score a disjoint half of retrained models against the other, the
forgetting-quality ceiling of `50-metrics.md` §3.5).
"""

from __future__ import annotations

import dataclasses
import json
import os
import zlib
from pathlib import Path
from typing import Any, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np

from unlearn_jax import io
from unlearn_jax.data import Dataset, ForgetSet
from unlearn_jax.data.forget import load_forget_set, save_forget_set
from unlearn_jax.errors import WorkdirError
from unlearn_jax.models import Model
from unlearn_jax.pipelines import validate
from unlearn_jax.pipelines.layout import Workdir
from unlearn_jax.train import (TrainState, data_parallel_mesh, evaluate, model_parallel_mesh,
                               predict)

REFERENCE_GROUPS = ("original", "oracle")
_GROUP_IDS = {"original": 0, "oracle": 1}
# Config sections that determine trained models; a workdir is reused only if they match.
RESULT_SECTIONS = ("seeds", "oracle_seeds", "data", "forget", "model", "train")
# Fields of `train` that choose the devices, not the models (equal within float tolerance), so a
# workdir can be resumed with another choice; `data_parallel` is its name in older workdirs.
DEVICE_FIELDS = ("parallelism", "data_parallel")
EVAL_SPLITS = ("forget", "retain", "validation", "test")


@dataclasses.dataclass(frozen=True)
class Experiment:
  """Everything a launcher needs, built once from the config."""
  config: Any
  workdir: Path
  dataset: Dataset
  forget_set: ForgetSet
  model: Model
  hparams: dict = dataclasses.field(default_factory=dict)  # method -> resolved hyperparameters

  @property
  def layout(self) -> Workdir:
    return Workdir(self.workdir)

  @property
  def seeds(self) -> tuple[int, ...]:
    return tuple(int(s) for s in self.config.seeds)

  def group_seeds(self, group: str) -> tuple[int, ...]:
    """The seeds of reference group `group`: `config.oracle_seeds` for the oracle."""
    if group == "oracle" and self.config.get("oracle_seeds"):
      return tuple(int(s) for s in self.config.oracle_seeds)
    return self.seeds

  def splits(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Named (x, y) evaluation splits. Forget/retain labels are the training labels."""
    train = self.dataset.train
    f, r = self.forget_set.indices, self.forget_set.retain_indices()
    labels = self.forget_set.train_labels
    return {
        "train": (train.x, labels),
        "forget": (train.x[f], labels[f]),
        "retain": (train.x[r], labels[r]),
        "validation": (self.dataset.validation.x, self.dataset.validation.y),
        "test": (self.dataset.test.x, self.dataset.test.y),
    }


def _section(config, name):
  return _result_part(name, io.to_jsonable(config.get(name)))


def _result_part(name: str, value):
  """What of section `name` (JSON) determines the trained models."""
  if name == "train" and isinstance(value, dict):
    return {k: v for k, v in value.items() if k not in DEVICE_FIELDS}
  if name == "model" and isinstance(value, dict):
    return {"init": "flax", **value}  # recorded before model.init existed: Flax's init
  return value


# ----------------------------------------------------------------------------------------------
# The workdir, checked before anything is written.


def _writable(path: Path) -> bool:
  """Writable by this process and not marked read-only (no write bit; root ignores the bits)."""
  return os.access(path, os.W_OK) and bool(path.stat().st_mode & 0o222)


def check_workdir_path(workdir: Path) -> None:
  """`workdir` is a folder (or can be created) and can be written."""
  if workdir.exists() and not workdir.is_dir():
    raise WorkdirError(f"--workdir {workdir} is a file, not a folder; pass a folder path (it is "
                       "created if absent)")
  existing = workdir
  while not existing.exists():
    existing = existing.parent
  if not existing.is_dir():
    raise WorkdirError(f"--workdir {workdir} lies below the file {existing}; pass a folder path")
  if not _writable(existing):
    raise WorkdirError(f"{existing} is read-only, so --workdir {workdir} cannot be written; "
                       f"make it writable (chmod u+w {existing}) or choose another --workdir")


def read_workdir_json(path: Path, what: str) -> Any:
  """A JSON object of the workdir (every one it keeps is an object); a corrupted one, or one
  that is not an object, is a one-line `WorkdirError`."""
  try:
    value = io.read_json(path)
  except (ValueError, UnicodeDecodeError) as e:
    raise WorkdirError(f"{path} ({what}) is corrupted ({type(e).__name__}); delete it or use a "
                       "fresh --workdir") from e
  if not isinstance(value, dict):
    raise WorkdirError(f"{path} ({what}) holds a JSON {type(value).__name__}, not an object: it "
                       "was not written by unlearn-jax; delete it or use a fresh --workdir")
  return value


def load_workdir_npz(path: Path, what: str) -> dict[str, np.ndarray]:
  """The arrays of an .npz file the workdir keeps; a corrupted one is a one-line
  `WorkdirError`."""
  try:
    with np.load(path) as f:
      return {k: f[k] for k in f.files}
  except FileNotFoundError:
    raise
  except Exception as e:  # noqa: BLE001 - zip/npz errors of a damaged file
    raise WorkdirError(f"{path} ({what}) is corrupted ({type(e).__name__}); delete it and rerun "
                       "with the same --workdir (it is recomputed)") from e


def config_differences(config, stored: Mapping) -> tuple[list[str], str]:
  """The result sections in which `config` differs from a recorded config.json, and a hint."""
  stored = dict(stored)
  legacy = "oracle_seeds" not in stored  # recorded before oracle_seeds: oracle had `seeds`
  if legacy:
    stored["oracle_seeds"] = stored.get("seeds")
  differ = [s for s in RESULT_SECTIONS
            if _result_part(s, stored.get(s)) != _section(config, s)]
  hint = ""
  if "oracle_seeds" in differ and legacy:
    n = len(stored.get("seeds") or [])
    hint = (f" (made before oracle_seeds existed: its oracle group has the {n} seeds of "
            f"`seeds`; pass oracle_seeds={n} in the config argument to reuse it)")
  return differ, hint


def check_workdir(config, layout: Workdir, forget_meta: Mapping) -> dict[str, bool]:
  """Check an existing workdir against `config` without writing. Returns what must be
  (re)written: {"config": ..., "forget_set": ...}."""
  check_workdir_path(layout.root)
  write = {"config": True, "forget_set": True}
  if not layout.root.exists():
    return write
  has_results = layout.holds_results()
  if layout.config.exists():
    stored = read_workdir_json(layout.config, "the recorded config")
    differ, hint = config_differences(config, stored)
    if differ and has_results:
      raise WorkdirError(f"workdir {layout.root} was made with a different config (sections "
                         f"{', '.join(differ)} differ){hint}; use a fresh --workdir or the "
                         "same config")
    write["config"] = io.json_key(stored) != io.json_key(config)
  if layout.forget_set.exists():
    try:
      _, stored_meta = load_forget_set(layout.forget_set)
    except Exception as e:  # noqa: BLE001 - any unreadable file: a zip, npz or JSON error
      raise WorkdirError(f"{layout.forget_set} is corrupted ({type(e).__name__}); delete it "
                         "(if the workdir holds models, use a fresh --workdir instead)") from e
    same = stored_meta == json.loads(json.dumps(io.to_jsonable(forget_meta), sort_keys=True))
    if not same and has_results:
      raise WorkdirError(f"{layout.forget_set} holds a forget set built from a different config; "
                         "use a fresh --workdir or the same data/forget config")
    write["forget_set"] = not same
  return write


def setup(config, workdir, *, write_config: bool = True, methods: bool = False,
          tune: bool = False) -> Experiment:
  """Check `config` and `workdir` (nothing is written if either is bad), then record the config
  and the forget set and return the experiment.

  Args:
    config: an experiment config (`experiments/configs/*.py`); an unset `oracle_seeds` is
      resolved in place.
    workdir: the experiment folder (created if absent).
    write_config: replace config.json (False: write it only when there is none, e.g. for the
      tuner, which must not replace the unlearning run's methods and eval settings).
    methods, tune: check the methods / tuning sections too (`validate.plan`).
  """
  plan = validate.plan(config, methods=methods, tune=tune)
  layout = Workdir(workdir)
  write = check_workdir(config, layout, plan.forget_meta)
  layout.root.mkdir(parents=True, exist_ok=True)
  if write["config"] and (write_config or not layout.config.exists()):
    io.atomic_write_json(layout.config, config)
  forget_set = plan.forget_set
  if write["forget_set"]:
    save_forget_set(layout.forget_set, forget_set, plan.forget_meta)
  else:
    forget_set, _ = load_forget_set(layout.forget_set)
  return Experiment(config=config, workdir=layout.root, dataset=plan.dataset,
                    forget_set=forget_set, model=plan.model, hparams=plan.hparams)


# ----------------------------------------------------------------------------------------------
# Shared by every experiment.


def group_keys(seeds, group: str) -> tuple[jax.Array, jax.Array]:
  """(init keys, data-order keys), one per seed, distinct for every group."""
  gid = _GROUP_IDS.get(group, sum(map(ord, group)))
  base = jnp.stack([jax.random.fold_in(jax.random.PRNGKey(s), gid) for s in seeds])
  return (jax.vmap(lambda k: jax.random.fold_in(k, 0))(base),
          jax.vmap(lambda k: jax.random.fold_in(k, 1))(base))


_METHOD_STREAM = 2  # keeps method keys apart from the reference groups' (0 and 1)


def method_keys(seeds, name: str) -> jax.Array:
  """One PRNG key per seed, a deterministic function of (seed, method name)."""
  tag = np.uint32(zlib.crc32(name.encode()))
  return jnp.stack([jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(s), _METHOD_STREAM),
                                       tag) for s in seeds])


def mesh_for(config) -> Optional[jax.sharding.Mesh]:
  """The mesh reference training runs on, from `config.train.parallelism`: `data` a data mesh
  over the local devices (batches split), `models` a model mesh over all devices of all hosts
  (seeds split), `none` no mesh; also no mesh when there is only one device to split over."""
  parallelism = config.train.parallelism
  if parallelism == "models" and jax.device_count() > 1:
    return model_parallel_mesh()
  return method_mesh_for(config)


def method_mesh_for(config) -> Optional[jax.sharding.Mesh]:
  """The mesh the unlearning methods run on: a data mesh over the local devices unless
  `config.train.parallelism` is `none` (or there is one local device). Their loops split
  batches, so under `models` they run data-parallel."""
  if config.train.parallelism != "none" and jax.local_device_count() > 1:
    return data_parallel_mesh()
  return None


def evaluate_splits(state: TrainState, splits: Mapping[str, tuple], batch_size: int = 1000,
                    model_axis: str = "auto") -> dict[str, dict[str, list[float]]]:
  """split -> metric -> per-seed values (lists), for a stacked state."""
  out = {}
  for name, (x, y) in splits.items():
    metrics = evaluate(state, x, y, batch_size=batch_size, model_axis=model_axis)
    out[name] = {k: np.atleast_1d(np.asarray(v)).tolist() for k, v in metrics.items()}
  return out


def save_logits(path, state: TrainState, splits: Mapping[str, tuple], batch_size: int,
                model_axis: str = "auto") -> None:
  """Logits `[N, n, C]` (float32) and labels of every split, written atomically to `path`."""
  arrays = {}
  for name in EVAL_SPLITS:
    x, y = splits[name]
    arrays[f"{name}_logits"] = np.asarray(predict(state, x, batch_size=batch_size,
                                                  model_axis=model_axis), np.float32)
    arrays[f"{name}_labels"] = np.asarray(y, np.int64)
  io.atomic_savez(path, **arrays)


def load_logits(path) -> dict[str, np.ndarray]:
  """`{<split>_logits: [N, n, C], <split>_labels: [n]}` as saved by `save_logits`; a corrupted
  or half-written file, or one without every split's logits and labels, is a one-line
  `WorkdirError`."""
  fix = ("delete it and rerun python -m experiments.unlearn with the same --workdir to "
         "recompute it")
  try:
    with np.load(path) as f:
      out = {k: f[k] for k in f.files}
  except FileNotFoundError:
    raise
  except Exception as e:  # noqa: BLE001 - zip/npz errors of a damaged file
    raise WorkdirError(f"{path} is corrupted ({type(e).__name__}); {fix}") from e
  missing = [f"{s}_{k}" for s in EVAL_SPLITS for k in ("logits", "labels")
             if f"{s}_{k}" not in out]
  if missing:
    raise WorkdirError(f"{path} lacks {', '.join(missing)} (not written by this version of "
                       f"unlearn-jax); {fix}")
  return out
