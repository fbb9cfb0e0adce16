"""Interrupted-then-resumed training ends with exactly the numbers of an uninterrupted run."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from unlearn_jax import io
from unlearn_jax.pipelines import reference as runs
from unlearn_jax import train as T
from unlearn_jax.models import build_model

EPOCHS = 4


class Interrupt(Exception):
  pass


MODEL = build_model("cnn", 10, width=0.25)


def fresh_state(x):
  model = MODEL
  tx = T.make_optimizer(learning_rate=0.05, total_steps=EPOCHS * (len(x) // 32),
                        weight_decay=5e-4)
  keys = jnp.stack([jax.random.PRNGKey(0), jax.random.PRNGKey(1)])
  return T.create_train_state(model, tx, keys, x.shape[1:])


def train(x, y, run_dir, **kw):
  keys = jnp.stack([jax.random.PRNGKey(10), jax.random.PRNGKey(11)])
  return runs.train_group(fresh_state(x), x, y, key=keys, epochs=EPOCHS, batch_size=32,
                          run_dir=run_dir, eval_sets={"val": (x[:64], y[:64])},
                          progress=False, **kw)


def leaves_equal(a, b):
  return all(np.array_equal(u, v) for u, v in
             zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


@pytest.mark.parametrize("stop_after", [1, 3])
def test_interrupted_then_resumed_equals_uninterrupted(tmp_path, digits_small, stop_after,
                                                       monkeypatch):
  x, y = digits_small
  reference = train(x, y, tmp_path / "reference")

  def interrupt(epoch, state):
    if epoch == stop_after:
      raise Interrupt

  with pytest.raises(Interrupt):
    train(x, y, tmp_path / "resumed", on_epoch_end=interrupt)
  log = io.read_jsonl(tmp_path / "resumed" / "metrics.jsonl")
  assert [r["epoch"] for r in log] == list(range(1, stop_after + 1))

  resumed = train(x, y, tmp_path / "resumed")
  assert leaves_equal(reference.params, resumed.params)
  assert leaves_equal(reference.model_state, resumed.model_state)
  assert leaves_equal(reference.opt_state, resumed.opt_state)
  np.testing.assert_array_equal(reference.step, resumed.step)
  log = io.read_jsonl(tmp_path / "resumed" / "metrics.jsonl")
  ref_log = io.read_jsonl(tmp_path / "reference" / "metrics.jsonl")
  assert [r["epoch"] for r in log] == list(range(1, EPOCHS + 1))
  for a, b in zip(log, ref_log):  # identical numbers apart from wall time
    assert {k: v for k, v in a.items() if k != "wall_s"} == \
        {k: v for k, v in b.items() if k != "wall_s"}

  # A finished run is restored, not recomputed.
  def no_training(*args, **kwargs):
    raise AssertionError("a finished group must not train again")

  monkeypatch.setattr(runs, "fit", no_training)
  again = train(x, y, tmp_path / "resumed")
  assert leaves_equal(reference.params, again.params)


def test_log_lines_after_the_last_checkpoint_are_dropped(tmp_path, digits_small):
  x, y = digits_small
  run_dir = tmp_path / "run"

  def interrupt(epoch, state):
    if epoch == 3:
      raise Interrupt

  with pytest.raises(Interrupt):
    train(x, y, run_dir, checkpoint_every=2, on_epoch_end=interrupt)
  # epoch 3 was logged but only epoch 2 was checkpointed: resuming redoes epoch 3
  assert [r["epoch"] for r in io.read_jsonl(run_dir / "metrics.jsonl")] == [1, 2, 3]
  reference = train(x, y, tmp_path / "reference")
  resumed = train(x, y, run_dir, checkpoint_every=2)
  assert [r["epoch"] for r in io.read_jsonl(run_dir / "metrics.jsonl")] == [1, 2, 3, 4]
  assert leaves_equal(reference.params, resumed.params)
