"""Per-epoch checkpoints of a (single or stacked) `TrainState` with orbax.

Saved: step, params, model_state and optimizer state (the static `apply_fn`/`tx` are rebuilt from
the config). Orbax writes each checkpoint to a temporary folder and renames it when complete, so an
interrupted save never looks finished. Restoring uses the freshly built state as the abstract
target, which gives back the optax state types.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import jax
import orbax.checkpoint as ocp

from unlearn_jax.errors import WorkdirError
from unlearn_jax.runtime import quiet_absl_logging
from unlearn_jax.train import TrainState


def _payload(state: TrainState) -> dict:
  return {"step": state.step, "params": state.params, "model_state": state.model_state,
          "opt_state": state.opt_state}


class Checkpointer:
  """Checkpoints indexed by completed epoch in `directory`, keeping the newest `max_to_keep`."""

  def __init__(self, directory, max_to_keep: int = 2):
    self.directory = Path(directory).absolute()
    with quiet_absl_logging():  # orbax logs about damaged metadata; restore() raises about it
      self._manager = ocp.CheckpointManager(
          self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep,
                                                               create=True))

  def latest_epoch(self) -> Optional[int]:
    with quiet_absl_logging():  # a damaged checkpoint's metadata: restore() raises about it
      return self._manager.latest_step()

  def save(self, epoch: int, state: TrainState) -> None:
    self._manager.save(epoch, args=ocp.args.StandardSave(_payload(state)))

  def restore(self, epoch: int, like: TrainState) -> TrainState:
    """Restore epoch `epoch` into the structure (and shardings) of `like`."""
    target = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, _payload(like))
    try:
      with quiet_absl_logging():  # orbax logs the parse error that is raised next
        restored = self._manager.restore(epoch, args=ocp.args.StandardRestore(target))
    except Exception as e:  # noqa: BLE001 - orbax/tensorstore errors of a damaged checkpoint
      where = self.directory / str(epoch)
      raise WorkdirError(f"checkpoint {where} cannot be read ({type(e).__name__}); delete that "
                         "folder to resume from the checkpoint before it, or use a fresh "
                         "--workdir") from e
    return like.replace(**restored)

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()
