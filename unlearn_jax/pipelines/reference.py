"""The reference models: resumable training of a group (one or N stacked seeds), the `original`
and `oracle` groups of an experiment, and `experiments.train`'s summary.

  train_group(state, x, y, ..., run_dir)   resumable training in a run folder
  train_reference(exp, group)              the `original` or `oracle` group of an experiment
  run_train(config, workdir) -> summary    both groups, evaluated, `summary.json`

Layout of a run folder (`layout.Workdir.group`): `checkpoints/<epoch>/` (orbax) and
`metrics.jsonl` (one record per epoch). Killing the process at any point and calling
`train_group` again resumes from the last saved epoch and reaches the same final state; a
finished group is restored, not recomputed. A loss that becomes NaN/inf stops training after
that epoch, before its checkpoint is saved (`TrainingDivergedError`).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Callable, Mapping, Optional

import jax
import numpy as np
from tqdm.auto import tqdm

from unlearn_jax import io
from unlearn_jax.checkpoint import Checkpointer
from unlearn_jax.errors import TrainingDivergedError, WorkdirError
from unlearn_jax.models import count_params
from unlearn_jax.pipelines import experiment
from unlearn_jax.pipelines.experiment import Experiment
from unlearn_jax.train import (TrainState, check_batch_size, create_train_state, evaluate, fit,
                               make_optimizer)


class Diverged(Exception):
  """Raised inside `train_group` when a loss is not finite (`models`: indices along the model
  axis, `loss`: their mean training losses of `epoch`)."""

  def __init__(self, epoch: int, models: list[int], loss: list[float]):
    super().__init__(f"loss {loss} at epoch {epoch} for model(s) {models}")
    self.epoch, self.models, self.loss = epoch, models, loss


def train_group(state: TrainState, x, y, *, key, epochs: int, batch_size: int, run_dir,
                eval_sets: Optional[Mapping[str, tuple]] = None, checkpoint_every: int = 1,
                mesh=None, train_step_fn=None, model_axis: str = "auto", progress: bool = True,
                desc: str = "train", eval_batch_size: int = 1000,
                on_epoch_end: Optional[Callable[[int, TrainState], None]] = None,
                stop_on_divergence: bool = True, subsets=None, model_chunk: int = 0
                ) -> TrainState:
  """Train `state` (fresh, single or stacked) for `epochs`, checkpointing and logging per epoch.

  Args:
    state: the fresh initial state; also the restore target.
    x, y, key, epochs, batch_size, mesh, train_step_fn, model_axis, subsets, model_chunk: as in
      `unlearn_jax.train.fit` (`subsets`: each model's own training rows, shadow models).
    run_dir: folder for checkpoints and `metrics.jsonl`.
    eval_sets: name -> (x, y) evaluated (inference mode) after every epoch and logged.
    checkpoint_every: save every this many epochs (the last epoch is always saved).
    stop_on_divergence: raise `Diverged` after an epoch whose mean training loss is not finite
      for some model, before that epoch is checkpointed or logged.
  Returns:
    The trained state after `epochs` epochs.
  """
  run_dir = Path(run_dir)
  metrics_path = run_dir / "metrics.jsonl"
  kwargs = {} if train_step_fn is None else {"train_step_fn": train_step_fn}
  with Checkpointer(run_dir / "checkpoints") as ckpt:
    start = ckpt.latest_epoch() or 0
    if start > epochs:
      raise WorkdirError(f"{run_dir} holds a checkpoint at epoch {start} > epochs={epochs}; "
                         "use a fresh --workdir")
    if start:
      state = ckpt.restore(start, state)
    io.keep_jsonl(metrics_path, lambda r: r.get("epoch", 0) <= start)
    done = io.read_jsonl(metrics_path)
    wall_before = done[-1]["wall_s"] if done else 0.0
    if start == epochs:
      return state
    bar = tqdm(total=epochs, initial=start, desc=desc, disable=not progress, leave=False)
    t0 = time.perf_counter()

    def on_end(epoch: int, st: TrainState, metrics: dict) -> None:
      loss = np.atleast_1d(np.asarray(metrics["loss"], np.float64))
      if stop_on_divergence and not np.isfinite(loss).all():
        bad = np.flatnonzero(~np.isfinite(loss)).tolist()
        raise Diverged(epoch, bad, loss[bad].tolist())
      record = {"epoch": epoch, "wall_s": wall_before + time.perf_counter() - t0,
                **{f"train_{k}": v for k, v in metrics.items()}}
      for name, (ex, ey) in (eval_sets or {}).items():
        for k, v in evaluate(st, ex, ey, batch_size=eval_batch_size,
                             model_axis=model_axis).items():
          record[f"{name}_{k}"] = v
      if epoch % checkpoint_every == 0 or epoch == epochs:
        ckpt.save(epoch, st)
        ckpt.wait()  # the log must never run ahead of the newest finished checkpoint
      io.append_jsonl(metrics_path, record)
      acc = np.atleast_1d(np.asarray(metrics["accuracy"]))
      bar.set_postfix(loss=float(np.mean(metrics["loss"])), acc=float(acc.mean()))
      bar.update(1)
      if on_epoch_end is not None:
        on_epoch_end(epoch, st)

    state = fit(state, x, y, key=key, epochs=epochs, batch_size=batch_size, start_epoch=start,
                mesh=mesh, model_axis=model_axis, on_epoch_end=on_end, subsets=subsets,
                model_chunk=model_chunk, **kwargs)
    bar.close()
  return jax.block_until_ready(state)


# ----------------------------------------------------------------------------------------------
# The reference groups of an experiment.


def _divergence_error(exp: Experiment, group: str, e: Diverged) -> TrainingDivergedError:
  seeds = [exp.group_seeds(group)[i] for i in e.models]
  lr = exp.config.train.learning_rate
  return TrainingDivergedError(
      f"the {group} group diverged at epoch {e.epoch} (training loss {e.loss} for seed(s) "
      f"{seeds}); lower --config.train.learning_rate (now {lr:g}) or raise "
      f"--config.train.batch_size; its unfinished models were removed, so the same --workdir "
      "can be reused" + (" once nothing else was computed in it" if group != "original" else ""))


def train_reference(exp: Experiment, group: str) -> tuple[TrainState, dict]:
  """Train (or resume, or reload) the `original` or `oracle` group, one model per seed.

  A non-finite training loss stops the group after that epoch: its run folder is removed
  (nothing that looks finished is left) and a `TrainingDivergedError` names the seeds and the
  knob to change.
  """
  t = exp.config.train
  x, y = exp.splits()["train" if group == "original" else "retain"]
  mesh = experiment.mesh_for(exp.config)
  steps = check_batch_size(t.batch_size, len(x), mesh)
  tx = make_optimizer(learning_rate=t.learning_rate, total_steps=t.epochs * steps,
                      momentum=t.momentum, weight_decay=t.weight_decay, schedule=t.schedule,
                      final_lr_fraction=t.final_lr_fraction, epoch_steps=steps)
  init_keys, data_keys = experiment.group_keys(exp.group_seeds(group), group)
  state = create_train_state(exp.model, tx, init_keys, exp.dataset.image_shape)
  run_dir = exp.layout.group(group)
  val = exp.splits()["validation"]
  try:
    state = train_group(state, x, y, key=data_keys, epochs=t.epochs, batch_size=t.batch_size,
                        run_dir=run_dir, eval_sets={"validation": val},
                        checkpoint_every=t.checkpoint_every, mesh=mesh,
                        model_axis=t.model_axis, progress=exp.config.progress, desc=group,
                        eval_batch_size=t.eval_batch_size)
  except Diverged as e:
    shutil.rmtree(run_dir, ignore_errors=True)
    raise _divergence_error(exp, group, e) from None
  log = io.read_jsonl(run_dir / "metrics.jsonl")
  cost = {"epochs": t.epochs, "wall_s": log[-1]["wall_s"] if log else 0.0,
          "example_gradients": t.epochs * steps * t.batch_size}
  return state, cost


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
  exp = experiment.setup(config, workdir)
  splits = exp.splits()
  groups = {}
  for group in experiment.REFERENCE_GROUPS:
    state, cost = train_reference(exp, group)
    per_split = experiment.evaluate_splits(state, splits, config.train.eval_batch_size,
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
  io.atomic_write_json(exp.layout.summary, summary)
  return summary


def one_line(summary: dict, workdir) -> str:
  """The one-line summary `experiments.train` prints at the end."""
  parts = []
  for group, g in summary["groups"].items():
    s = g["splits"]
    parts.append(f"{group}: test {s['test']['accuracy']['mean']:.4f}±"
                 f"{s['test']['accuracy']['std']:.4f} forget {s['forget']['accuracy']['mean']:.4f}"
                 f" retain {s['retain']['accuracy']['mean']:.4f}")
  return (f"{summary['dataset']}/{summary['model']} x{len(summary['seeds'])} seeds | "
          + " | ".join(parts) + f" | {summary['wall_s']:.0f}s -> {Path(workdir) / 'summary.json'}")
