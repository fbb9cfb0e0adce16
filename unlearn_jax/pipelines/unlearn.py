"""The unlearning experiment behind `experiments.unlearn`: reference models, methods, saved logits.

  run_unlearn(config, workdir) -> summary

Files (`layout.Workdir`): on top of config.json, forget_set.npz and models/ of the reference
groups,
  methods/<name>/checkpoint/   the unlearned stacked state (params + model_state; no optimizer)
  methods/<name>/result.json   status (done | failed), cost, diverged per seed, info, the
                               method's resolved hyperparameters; written atomically LAST
  eval/<group>.npz             logits [N, n, C] and labels of the forget/retain/validation/test
                               splits for `original`, `oracle` and every method
  eval/references.json         cost of the `original` and `oracle` groups
  report.md, results.csv, results.json, summary.json, plots/   (`pipelines.report`)

Reuse: a method whose result.json says `done` with the same hyperparameters and seeds is not run
again (its logits are recomputed from the checkpoint if eval/<name>.npz is missing). A method
without result.json (killed mid-run), one that failed, or one whose hyperparameters changed is
run again from scratch. The reference groups resume or reload as in `reference.train_reference`.
Every method's hyperparameters are checked (`validate.plan`) before anything is trained.
"""

from __future__ import annotations

import shutil
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np
import optax
from absl import logging
from tqdm.auto import tqdm

from unlearn_jax import io
from unlearn_jax.checkpoint import Checkpointer
from unlearn_jax.methods import UnlearnData, get_method, run_method
from unlearn_jax.pipelines import experiment, reference
from unlearn_jax.pipelines.experiment import Experiment, method_keys, save_logits
from unlearn_jax.pipelines.layout import Workdir
from unlearn_jax.train import TrainState, create_train_state, replicate


# ----------------------------------------------------------------------------------------------
# One method.


def _stripped(state: TrainState) -> TrainState:
  """What is saved of an unlearned state: step, params and model_state (no optimizer)."""
  return state.replace(opt_state=None)


def load_unlearned(workdir, name: str, like: TrainState) -> TrainState:
  """The unlearned stacked state of method `name` (`like`: any state of the same model and N,
  e.g. the original group). Its `opt_state` is None: re-create an optimizer to train it."""
  layout = Workdir(workdir)
  with Checkpointer(layout.method_checkpoint(name), max_to_keep=1) as ckpt:
    epoch = ckpt.latest_epoch()
    if epoch is None:
      raise FileNotFoundError(f"no checkpoint of method '{name}' in {layout.method(name)}")
    return ckpt.restore(epoch, _stripped(like))


def _jsonable_info(info: Mapping[str, Any], max_size: int = 64) -> dict:
  """A method's info with big arrays (masks, per-example values) replaced by their shapes."""
  out = {}
  for k, v in (info or {}).items():
    leaves = jax.tree_util.tree_leaves(v)
    size = sum(int(np.size(l)) for l in leaves)
    out[str(k)] = io.to_jsonable(v) if size <= max_size else (
        f"<{len(leaves)} array(s), {size} values>")
  return out


def _finished(result_path: Path, hparams: dict, seeds) -> bool:
  if not result_path.exists():
    return False
  try:
    r = io.read_json(result_path)
  except ValueError:
    return False
  return (r.get("status") == "done" and r.get("config") == io.to_jsonable(hparams)
          and r.get("seeds") == list(seeds))


def apply_method(exp: Experiment, name: str, hparams: dict, original: TrainState,
                 data: UnlearnData, keys):
  """Run method `name` on the original models (the pipeline's extra inputs included: for
  `single_gradient` with reference="initial", w_0 = the original group's initialization).

  The original models are first replicated on `data.mesh`, where the methods run (under
  `parallelism=models` they come split over the devices)."""
  original = replicate(original, data.mesh)
  if name == "single_gradient" and hparams.get("reference") == "initial":
    return get_method(name).unlearn(original, data, hparams, keys,
                                    reference_state=initial_state(exp, "original"))
  return run_method(name, original, data, hparams, keys)


def run_one_method(exp: Experiment, name: str, hparams: Any, original: TrainState,
                   data: UnlearnData, splits: Mapping[str, tuple]) -> dict:
  """Run (or reuse) method `name` and save its checkpoint, logits and result.json.

  Returns the result record. Any exception of the method is recorded (status `failed`, with
  its message) instead of being raised.
  """
  workdir, layout, seeds = exp.workdir, exp.layout, list(exp.seeds)
  out, logits_path = layout.method(name), layout.logits(name)
  result_path = layout.method_result(name)
  ev = exp.config.eval
  if not isinstance(hparams, Exception) and _finished(result_path, hparams, seeds):
    if not logits_path.exists():
      save_logits(logits_path, load_unlearned(workdir, name, original), splits,
                  ev.batch_size, exp.config.train.model_axis)
    record = io.read_json(result_path)
    record["reused"] = True
    return record

  if out.exists():  # unfinished, failed or made with other hyperparameters: start afresh
    shutil.rmtree(out)
  logits_path.unlink(missing_ok=True)
  out.mkdir(parents=True)
  record = {"method": name, "seeds": seeds}
  try:
    if isinstance(hparams, Exception):
      raise hparams
    record["config"] = io.to_jsonable(hparams)
    record["uses_forget"] = bool(get_method(name).USES_FORGET)
    keys = method_keys(seeds, name)
    cpu0 = time.process_time()
    result = apply_method(exp, name, hparams, original, data, keys)
    state = jax.block_until_ready(result.state)
    cpu_s = time.process_time() - cpu0  # CPU time of all threads: robust to a shared machine
    with Checkpointer(layout.method_checkpoint(name), max_to_keep=1) as ckpt:
      ckpt.save(1, _stripped(state))
    save_logits(logits_path, state, splits, ev.batch_size,
                exp.config.train.model_axis)
    diverged = np.atleast_1d(np.asarray(result.diverged, bool))
    cost = {**io.to_jsonable(result.cost), "cpu_s": cpu_s}
    record.update(status="done", cost=cost, diverged=diverged.tolist(),
                  info=_jsonable_info(result.info))
  except Exception as e:  # noqa: BLE001 - one method's failure must not stop the others
    record.update(status="failed", error=f"{type(e).__name__}: {e}",
                  traceback=traceback.format_exc(limit=8))
    logging.warning("unlearning method '%s' failed: %s", name, record["error"])
    logits_path.unlink(missing_ok=True)
  io.atomic_write_json(result_path, record)
  record["reused"] = False
  return record


# ----------------------------------------------------------------------------------------------
# The whole experiment.


def initial_state(exp: Experiment, group: str) -> TrainState:
  """The initialization of reference group `group` (stacked; an identity optimizer)."""
  init_keys, _ = experiment.group_keys(exp.seeds, group)
  return create_train_state(exp.model, optax.identity(), init_keys, exp.dataset.image_shape)


def unlearn_data(exp: Experiment) -> UnlearnData:
  splits = exp.splits()
  (rx, ry), (fx, fy) = splits["retain"], splits["forget"]
  return UnlearnData(retain_x=rx, retain_y=np.asarray(ry), forget_x=fx, forget_y=np.asarray(fy),
                     num_classes=exp.dataset.num_classes, model=exp.model,
                     image_shape=exp.dataset.image_shape,
                     model_axis=exp.config.train.model_axis,
                     mesh=experiment.method_mesh_for(exp.config))


def run_unlearn(config, workdir, *, report: bool = True) -> dict:
  """Train or reuse `original` and `oracle`, run every configured method, save logits, report.

  Args:
    config: the `experiments/configs/unlearn.py` config.
    workdir: the experiment folder (shared with `experiments.train`).
    report: write report.md & co. with `pipelines.report.evaluate_workdir` at the end.

  Returns:
    The summary (`summary.json`) if `report`, else `{group: result record}`.
  """
  t0 = time.perf_counter()
  shadow_plan = None
  if (config.get("shadows") or {}).get("num"):  # shadow models (U-LiRA, KLOM): checked first
    from unlearn_jax.pipelines import shadows  # noqa: PLC0415
    shadow_plan = shadows.prepare(config, workdir)
  exp = experiment.setup(config, workdir, methods=True)  # every config error before any write
  hparams = exp.hparams
  splits = exp.splits()
  batch, axis = config.eval.batch_size, config.train.model_axis
  costs = {}
  original = None
  for group in experiment.REFERENCE_GROUPS:
    state, costs[group] = reference.train_reference(exp, group)
    if not exp.layout.logits(group).exists():
      save_logits(exp.layout.logits(group), state, splits, batch, axis)
    if group == "original":
      original = state
    del state
  io.atomic_write_json(exp.layout.references, costs)

  data = unlearn_data(exp)
  records = {}
  bar = tqdm(total=len(hparams), desc="methods", disable=not config.get("progress", True),
             leave=False)
  for name, hp in hparams.items():
    bar.set_postfix_str(name)
    records[name] = run_one_method(exp, name, hp, original, data, splits)
    r = records[name]
    if not r["reused"]:
      msg = (f"{r['cost']['wall_s']:.1f}s" if r["status"] == "done" else r["error"])
      logging.info("method %s: %s %s", name, r["status"], msg)
    bar.update(1)
  bar.close()
  if shadow_plan is not None:  # every method again on K half-data models, own forget sets
    root, design = shadows.write_plan(exp, shadow_plan)
    shadows.shadow_stage(exp, root, design)
  if not report:
    return records
  from unlearn_jax.pipelines import report as report_lib  # matplotlib only when reporting
  return report_lib.evaluate_workdir(exp.workdir, run_wall_s=time.perf_counter() - t0)
