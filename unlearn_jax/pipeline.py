"""The experiment pipeline behind the launchers: data + forget set, reference models, summaries.

Workdir layout (everything a later launcher or a resumed run reuses):
  config.json                 the config that made the results (checked on reuse)
  forget_set.npz              forget indices and training labels, shared by every model
  models/<group>/             checkpoints/ and metrics.jsonl of a group (one model per seed)
  summary.json                final metrics of every group
The reference groups are `original` (trained on the whole training set, with the forget set's
training labels, i.e. the swapped ones for a `confusion` forget set) and `oracle` (trained from
a fresh initialization on the retain set with the same recipe: the retrain oracle). `original`
has one model per `config.seeds`, `oracle` one per `config.oracle_seeds` (default: twice as many,
so that the report can score a disjoint half of retrained models against the other, the
forgetting-quality ceiling of `50-metrics.md` §3.5).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np

from unlearn_jax import io
from unlearn_jax.data import Dataset, ForgetSet, load_dataset, load_or_build_forget_set
from unlearn_jax.models import Model, build_model_from_config, count_params
from unlearn_jax.runs import train_group
from unlearn_jax.train import (TrainState, check_batch_size, create_train_state,
                               data_parallel_mesh, evaluate, make_optimizer)

REFERENCE_GROUPS = ("original", "oracle")
_GROUP_IDS = {"original": 0, "oracle": 1}
# Config sections that determine trained models; a workdir is reused only if they match.
RESULT_SECTIONS = ("seeds", "oracle_seeds", "data", "forget", "model", "train")


@dataclasses.dataclass(frozen=True)
class Experiment:
  """Everything a launcher needs, built once from the config."""
  config: Any
  workdir: Path
  dataset: Dataset
  forget_set: ForgetSet
  model: Model

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


def default_oracle_seeds(seeds) -> tuple[int, ...]:
  """Twice as many oracle seeds as `seeds`: the seeds themselves, then as many new ones."""
  seeds = tuple(int(s) for s in seeds)
  start = max(seeds) + 1
  return seeds + tuple(range(start, start + len(seeds)))


def resolve_oracle_seeds(config) -> None:
  """Set `config.oracle_seeds` to `default_oracle_seeds(config.seeds)` when it is unset."""
  if not config.get("oracle_seeds"):
    config.oracle_seeds = default_oracle_seeds(config.seeds)


def _section(config, name):
  value = config.get(name)
  return io.to_jsonable(value.to_dict() if hasattr(value, "to_dict") else value)


def check_workdir_config(config, workdir: Path, write: bool = True) -> None:
  """Check that an existing config.json used the same result sections, then write this config
  (`write=False`: only when there is none yet, e.g. for the tuner, which must not replace the
  unlearning run's methods and eval settings)."""
  path = workdir / "config.json"
  if path.exists():
    stored = io.read_json(path)
    legacy = "oracle_seeds" not in stored  # recorded before oracle_seeds: oracle had `seeds`
    if legacy:
      stored["oracle_seeds"] = stored.get("seeds")
    differ = [s for s in RESULT_SECTIONS if stored.get(s) != _section(config, s)]
    if differ:
      hint = ""
      if "oracle_seeds" in differ and legacy:
        hint = (f" (made before oracle_seeds existed: its oracle group has the "
                f"{len(stored.get('seeds') or [])} seeds of `seeds`; pass oracle_seeds="
                f"{len(stored.get('seeds') or [])} in the config argument to reuse it)")
      raise ValueError(f"workdir {workdir} was made with a different config (sections "
                       f"{', '.join(differ)} differ){hint}; use a fresh --workdir or the same "
                       "config")
  if write or not path.exists():
    io.atomic_write_json(path, config)


def setup(config, workdir, *, write_config: bool = True) -> Experiment:
  """Load data, build (or reload) the forget set and build the model.

  Resolves an unset `config.oracle_seeds` (in place) before the config is checked and recorded.
  """
  workdir = Path(workdir).absolute()
  workdir.mkdir(parents=True, exist_ok=True)
  if not len(config.seeds):
    raise ValueError("config.seeds is empty; give at least one seed, e.g. --config.seeds=0,1,2")
  for name in ("seeds", "oracle_seeds"):
    values = list(config.get(name) or ())
    if len(set(values)) != len(values):
      raise ValueError(f"config.{name} lists a seed twice: {values}; give distinct seeds")
  resolve_oracle_seeds(config)
  check_workdir_config(config, workdir, write=write_config)
  d = config.data
  dataset = load_dataset(d.name, data_dir=d.data_dir, validation_fraction=d.validation_fraction,
                         test_fraction=d.test_fraction, split_seed=d.split_seed,
                         max_train_examples=d.max_train_examples)
  f = config.forget
  meta = {"data": _section(config, "data"), "forget": _section(config, "forget")}
  forget_set = load_or_build_forget_set(
      workdir / "forget_set.npz", f.kind, dataset.train.y, meta, seed=f.seed,
      fraction=f.fraction, count=f.count, classes=tuple(f.classes), class_a=f.class_a,
      class_b=f.class_b, num_examples=f.num_examples)
  model = build_model_from_config(config.model.to_dict(), dataset.num_classes)
  return Experiment(config=config, workdir=workdir, dataset=dataset, forget_set=forget_set,
                    model=model)


def group_keys(seeds, group: str) -> tuple[jax.Array, jax.Array]:
  """(init keys, data-order keys), one per seed, distinct for every group."""
  gid = _GROUP_IDS.get(group, sum(map(ord, group)))
  base = jnp.stack([jax.random.fold_in(jax.random.PRNGKey(s), gid) for s in seeds])
  return (jax.vmap(lambda k: jax.random.fold_in(k, 0))(base),
          jax.vmap(lambda k: jax.random.fold_in(k, 1))(base))


def mesh_for(config) -> Optional[jax.sharding.Mesh]:
  """A data-parallel mesh over all local devices when there are several and it is enabled."""
  if config.train.data_parallel and jax.local_device_count() > 1:
    return data_parallel_mesh()
  return None


def train_reference(exp: Experiment, group: str) -> tuple[TrainState, dict]:
  """Train (or resume, or reload) the `original` or `oracle` group, one model per seed."""
  t = exp.config.train
  x, y = exp.splits()["train" if group == "original" else "retain"]
  mesh = mesh_for(exp.config)
  steps = check_batch_size(t.batch_size, len(x), mesh)
  tx = make_optimizer(learning_rate=t.learning_rate, total_steps=t.epochs * steps,
                      momentum=t.momentum, weight_decay=t.weight_decay, schedule=t.schedule,
                      final_lr_fraction=t.final_lr_fraction)
  init_keys, data_keys = group_keys(exp.group_seeds(group), group)
  state = create_train_state(exp.model, tx, init_keys, exp.dataset.image_shape)
  run_dir = exp.workdir / "models" / group
  val = exp.splits()["validation"]
  state = train_group(state, x, y, key=data_keys, epochs=t.epochs, batch_size=t.batch_size,
                      run_dir=run_dir, eval_sets={"validation": val},
                      checkpoint_every=t.checkpoint_every, mesh=mesh,
                      model_axis=t.model_axis, progress=exp.config.progress, desc=group,
                      eval_batch_size=t.eval_batch_size)
  log = io.read_jsonl(run_dir / "metrics.jsonl")
  cost = {"epochs": t.epochs, "wall_s": log[-1]["wall_s"] if log else 0.0,
          "example_gradients": t.epochs * steps * t.batch_size}
  return state, cost


def evaluate_splits(state: TrainState, splits: Mapping[str, tuple], batch_size: int = 1000,
                    model_axis: str = "auto") -> dict[str, dict[str, list[float]]]:
  """split -> metric -> per-seed values (lists), for a stacked state."""
  out = {}
  for name, (x, y) in splits.items():
    metrics = evaluate(state, x, y, batch_size=batch_size, model_axis=model_axis)
    out[name] = {k: np.atleast_1d(np.asarray(v)).tolist() for k, v in metrics.items()}
  return out


def _mean_std(values) -> dict[str, float]:
  arr = np.asarray(values, dtype=np.float64)
  return {"mean": float(arr.mean()), "std": float(arr.std())}


def summarize_group(per_split: dict, cost: dict, num_params: int) -> dict:
  summary = {"num_params": num_params, "cost": cost, "splits": {}}
  for split, metrics in per_split.items():
    summary["splits"][split] = {k: {"per_seed": v, **_mean_std(v)} for k, v in metrics.items()}
  return summary


def run_train(config, workdir) -> dict:
  """Train the original and oracle groups for every seed and write `summary.json`."""
  t0 = time.perf_counter()
  exp = setup(config, workdir)
  splits = exp.splits()
  groups = {}
  for group in REFERENCE_GROUPS:
    state, cost = train_reference(exp, group)
    per_split = evaluate_splits(state, splits, config.train.eval_batch_size,
                                config.train.model_axis)
    groups[group] = summarize_group(per_split, cost, count_params(jax.tree_util.tree_map(
                                        lambda a: a[0], state.params)))
  summary = {
      "dataset": exp.dataset.name, "model": exp.model.name, "seeds": list(exp.seeds),
      "oracle_seeds": list(exp.group_seeds("oracle")),
      "forget": {"kind": exp.forget_set.kind, "size": int(len(exp.forget_set.indices))},
      "num_train": int(len(exp.dataset.train)), "devices": [str(d) for d in jax.devices()],
      "groups": groups, "wall_s": time.perf_counter() - t0,
  }
  io.atomic_write_json(exp.workdir / "summary.json", summary)
  return summary


def one_line(summary: dict, workdir) -> str:
  """The one-line summary a launcher prints at the end."""
  parts = []
  for group, g in summary["groups"].items():
    s = g["splits"]
    parts.append(f"{group}: test {s['test']['accuracy']['mean']:.4f}±"
                 f"{s['test']['accuracy']['std']:.4f} forget {s['forget']['accuracy']['mean']:.4f}"
                 f" retain {s['retain']['accuracy']['mean']:.4f}")
  return (f"{summary['dataset']}/{summary['model']} x{len(summary['seeds'])} seeds | "
          + " | ".join(parts) + f" | {summary['wall_s']:.0f}s -> {Path(workdir) / 'summary.json'}")
