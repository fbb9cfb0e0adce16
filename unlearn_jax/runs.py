"""Resumable training of a group of models (one or N stacked seeds) in a run folder.

Layout of `run_dir`: `checkpoints/<epoch>/` (orbax) and `metrics.jsonl` (one record per
epoch). Killing the process at any point and calling `train_group` again resumes from the last
saved epoch and reaches the same final state; a finished group is restored, not recomputed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Mapping, Optional

import jax
import numpy as np
from tqdm.auto import tqdm

from unlearn_jax import io
from unlearn_jax.checkpoint import Checkpointer
from unlearn_jax.train import TrainState, evaluate, fit


def train_group(state: TrainState, x, y, *, key, epochs: int, batch_size: int, run_dir,
                eval_sets: Optional[Mapping[str, tuple]] = None, checkpoint_every: int = 1,
                mesh=None, train_step_fn=None, model_axis: str = "auto", progress: bool = True,
                desc: str = "train", eval_batch_size: int = 1000,
                on_epoch_end: Optional[Callable[[int, TrainState], None]] = None) -> TrainState:
  """Train `state` (fresh, single or stacked) for `epochs`, checkpointing and logging per epoch.

  Args:
    state: the fresh initial state; also the restore target.
    x, y, key, epochs, batch_size, mesh, train_step_fn, model_axis: as in
      `unlearn_jax.train.fit`.
    run_dir: folder for checkpoints and `metrics.jsonl`.
    eval_sets: name -> (x, y) evaluated (inference mode) after every epoch and logged.
    checkpoint_every: save every this many epochs (the last epoch is always saved).
  Returns:
    The trained state after `epochs` epochs.
  """
  run_dir = Path(run_dir)
  metrics_path = run_dir / "metrics.jsonl"
  kwargs = {} if train_step_fn is None else {"train_step_fn": train_step_fn}
  with Checkpointer(run_dir / "checkpoints") as ckpt:
    start = ckpt.latest_epoch() or 0
    if start > epochs:
      raise ValueError(f"{run_dir} holds a checkpoint at epoch {start} > epochs={epochs}; "
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
                mesh=mesh, model_axis=model_axis, on_epoch_end=on_end, **kwargs)
    bar.close()
  return jax.block_until_ready(state)
