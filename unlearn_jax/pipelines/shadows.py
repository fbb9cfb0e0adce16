"""Shadow models in one program: memorisation scores and U-LiRA (`55-shadow-eval.md`).

  run_memorization(config, workdir) -> summary   K half-data models, Feldman-Zhang scores
  run_shadow_eval(config, workdir) -> summary     + per-model forget sets, K retrain oracles,
                                                  every method on every model, U-LiRA

One bank of K models, each trained on its own random half of the training set (`config.shadows`,
design `complement_pairs`: every example in exactly K/2 models), trained as one stacked program
(`train.fit(subsets=...)`), serves three evaluations:

* memorisation (Feldman & Zhang 2020; RUM, arXiv 2406.01257): mem(x) = accuracy on x of the
  models that trained on x minus that of the models that did not (`metrics.feldman_zhang`), and
  the learning-event confidence proxy (mean true-class probability over the training epochs of
  the models that trained on x, arXiv 2410.16516), with their Spearman correlation; written to
  `DIR/memorization.npz`, the scores file of `forget.kind=memorization`;
* LiRA on the original models (Carlini et al. 2112.03570) as the "original" row of U-LiRA;
* U-LiRA (Hayes et al., arXiv 2403.01218, as the KLOM authors run it): model k forgets
  `forget_size` examples drawn from its half ∩ a fixed forgettable pool (`data.shadows`); every
  method unlearns every model's own forget set in one stacked run; for each held-out target
  model (the last `targets` models, never used to fit), a per-example Gaussian test on
  logit-scaled confidence tells its forgotten examples from pool examples it never saw, with
  "in" = the other unlearned models that forgot x and "out" = original models whose half
  excluded x (`metrics.ulira`). Accuracy 0.5 = indistinguishable from never seen.
  Controls: `retrain` (K oracles trained from scratch on each model's retain rows, scored the
  same way: must be ≈ 0.5) and `original` (nothing unlearned: high).

Files under `DIR/shadows/`: `config.json` (the shadows section and recipe they were made with),
`design.npz` (subsets, keep, pool, forget/retain indices), `models/<group>/` (resumable runs),
`proxy/<epoch>.npy`, `logits/<name>.npz` (logits of all K models on the training set, one per
reference group and method), `methods/<name>.json` (status, cost; written last), then
`results.json` and `report.md`. Every stage is reused when present; a killed run resumes.
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from tqdm.auto import tqdm

from unlearn_jax import io
from unlearn_jax.data import forget as forget_lib
from unlearn_jax.data import shadows as designs
from unlearn_jax.errors import ConfigError, WorkdirError
from unlearn_jax.methods import UnlearnData, get_method, run_method
from unlearn_jax.metrics import (feldman_zhang, klom, logit_scaled_confidence, spearman,
                                 ulira)
from unlearn_jax.pipelines import experiment, reference, validate
from unlearn_jax.pipelines.experiment import Experiment, method_keys
from unlearn_jax.train import (TrainState, check_batch_size, create_train_state, make_optimizer,
                               predict)

GROUPS = ("shadow_original", "shadow_oracle")
LOGIT_SPLITS = ("train", "validation", "test")
DEFAULTS = dict(num=0, design="complement_pairs", seed=0, pool=720, forget_size=180, targets=8,
                fix_variance=True, cap=300, methods=(), pool_scores="", pool_level="high",
                model_chunk=-1)


# ----------------------------------------------------------------------------------------------
# Config.


def _fail(field: str, want: str, value: Any, example: Any) -> None:
  raise ConfigError(f"config.shadows.{field} must be {want}, got {value!r}; set e.g. "
                    f"--config.shadows.{field}={example}")


def _is_int(v) -> bool:
  return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def check_config(config, num_train: int | None = None, *, needs_forget: bool = True) -> None:
  """The `shadows` section: every field's type and range, and (given the training-set size)
  that a half holds enough pool examples. Raises a one-line `ConfigError`."""
  s = config.get("shadows")
  if s is None:
    raise ConfigError("the config has no 'shadows' section; use "
                      "--config=experiments/configs/unlearn.py:shadows=64")
  unknown = sorted(set(s.keys()) - set(DEFAULTS))
  if unknown:
    raise ConfigError(f"config.shadows has no field(s) {unknown}; it has {sorted(DEFAULTS)}")
  num = s.get("num")
  if not (_is_int(num) and num >= 4):
    _fail("num", "an integer >= 4 (shadow models)", num, 64)
  if s.get("design") not in designs.DESIGNS:
    _fail("design", f"one of {', '.join(designs.DESIGNS)}", s.get("design"), "complement_pairs")
  if s.design == "complement_pairs" and num % 2:
    _fail("num", "even for design complement_pairs (halves and their complements)", num, num + 1)
  if not (_is_int(s.get("seed")) and s.seed >= 0):
    _fail("seed", "an integer >= 0", s.get("seed"), 0)
  if not (_is_int(s.get("model_chunk", -1)) and s.get("model_chunk", -1) >= -1):
    _fail("model_chunk", "an integer >= -1 (-1: 8 on CPU, all at once elsewhere; 0: all at once)",
          s.get("model_chunk"), -1)
  if not needs_forget:
    return
  for field, example in (("pool", 720), ("forget_size", 180), ("cap", 300)):
    v = s.get(field)
    if not (_is_int(v) and v >= 1):
      _fail(field, "an integer >= 1", v, example)
  t = s.get("targets")
  if not (_is_int(t) and 1 <= t <= num - 4):
    _fail("targets", f"an integer in [1, {num - 4}] (held-out target models; the other models "
          "fit the attack)", t, min(8, max(1, num // 8)))
  if not isinstance(s.get("pool_scores", ""), str):
    _fail("pool_scores", "a scores file path ('' = a random pool)", s.get("pool_scores"),
          "DIR/memorization.npz")
  if s.get("pool_level", "high") not in forget_lib.MEMORIZATION_LEVELS:
    _fail("pool_level", f"one of {', '.join(forget_lib.MEMORIZATION_LEVELS)}",
          s.get("pool_level"), "high")
  if not isinstance(s.get("fix_variance"), bool):
    _fail("fix_variance", "true or false", s.get("fix_variance"), True)
  methods = s.get("methods")
  if not isinstance(methods, (tuple, list)) or not all(isinstance(m, str) for m in methods):
    _fail("methods", "a list of method names ('' = the main job's methods)", methods, "finetune")
  if num_train is not None:
    if s.pool > num_train:
      _fail("pool", f"at most the {num_train} training examples", s.pool, num_train // 4)
    if 2 * s.forget_size > s.pool:
      _fail("forget_size", f"at most half the pool ({s.pool // 2}: each model holds about half "
            "of the pool)", s.forget_size, s.pool // 4)


def method_names(config) -> list[str]:
  """The methods run on the shadow models: `config.shadows.methods`, or every method of the
  main job but `retrain` (the shadow oracles are the retrain control)."""
  main = list(config["methods"])
  names = list(config["shadows"]["methods"]) or [m for m in main if m != "retrain"]
  unknown = [m for m in names if m not in main]
  if unknown:
    raise ConfigError(f"config.shadows.methods names {unknown}, which the main job does not run "
                      f"({', '.join(main)}); list them in --config.methods too")
  return names


def shadow_settings(config) -> dict:
  """What the shadow models depend on (recorded in shadows/config.json): the shadows section
  but its scoring and speed fields, and the data, model and training recipe."""
  keep = {k: config[k] for k in ("data", "model", "train")}
  scoring = ("methods", "targets", "fix_variance", "cap", "model_chunk")  # change no model
  section = {k: v for k, v in dict(config.shadows).items() if k not in scoring}
  return io.to_jsonable({"shadows": section, **{k: v.to_dict() if hasattr(
      v, "to_dict") else v for k, v in keep.items()}})


def _check_recorded(root: Path, settings: dict) -> None:
  path = root / "config.json"
  if not path.exists():
    return
  try:
    old = io.read_json(path)
  except ValueError:
    raise WorkdirError(f"{path} is not valid JSON; delete {root} and rerun") from None
  if isinstance(old, dict) and isinstance(old.get("shadows"), dict):
    # fields added to the section later keep their defaults in an older record
    defaults = io.to_jsonable({k: v for k, v in DEFAULTS.items() if k in settings["shadows"]})
    old["shadows"] = {**defaults, **old["shadows"]}
  if old != settings:
    diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
    raise WorkdirError(f"{root} holds shadow models made with other settings ({', '.join(diff)});"
                       f" use the same config or delete {root}")


# ----------------------------------------------------------------------------------------------
# The design and the banks of models.


def choose_pool(config, dataset) -> np.ndarray:
  """The forgettable pool: `pool` random training examples, or with `pool_scores` (a
  memorisation scores file, e.g. another bank's `memorization.npz`) the `pool` examples of
  `pool_level` (RUM's high / low / mid / mixed, `data.forget.memorization`)."""
  s, n = config.shadows, len(dataset.train)
  if not s.get("pool_scores"):
    rng = np.random.default_rng([int(s.seed), 1])
    return np.sort(rng.choice(n, size=int(s.pool), replace=False))
  try:
    scores = forget_lib.load_memorization_scores(s.pool_scores, n, dataset=dataset.name,
                                                 labels=np.asarray(dataset.train.y))
    return forget_lib.memorization(scores.score, level=s.get("pool_level", "high"),
                                   count=int(s.pool), seed=int(s.seed))
  except ValueError as e:
    raise ConfigError(f"config.shadows.pool_scores: {e}") from None


def make_design(config, dataset) -> dict:
  """Subsets, keep mask, pool and per-model forget/retain indices: a pure function of
  `config.shadows` and the training set."""
  s = config.shadows
  num_train = len(dataset.train)
  subsets, keep = designs.random_subsets(int(s.num), num_train, seed=int(s.seed),
                                         design=s.design)
  out = {"subsets": subsets, "keep": keep}
  if "pool" in s and s.get("forget_size"):
    pool = choose_pool(config, dataset)
    have = keep[:, pool].sum(1).min()
    if have < s.forget_size:
      raise ConfigError(f"a shadow model holds only {have} of the {s.pool} pool examples, "
                        f"fewer than config.shadows.forget_size={s.forget_size}; lower it or "
                        "raise config.shadows.pool")
    forget, retain = designs.per_model_forget_sets(subsets, size=int(s.forget_size),
                                                   pool=pool, seed=int(s.seed) + 2)
    out.update(pool=pool, forget_index=forget, retain_index=retain)
  return out


def forgotten_mask(design: Mapping, num_train: int) -> np.ndarray:
  return designs.keep_mask(design["forget_index"], num_train)


def _recipe(config, n: int):
  t = config.train
  steps = check_batch_size(t.batch_size, n)
  return steps, make_optimizer(learning_rate=t.learning_rate, total_steps=t.epochs * steps,
                               momentum=t.momentum, weight_decay=t.weight_decay,
                               schedule=t.schedule, final_lr_fraction=t.final_lr_fraction,
                               epoch_steps=steps)


def _init(exp: Experiment, group: str, num: int, tx) -> tuple[TrainState, jax.Array]:
  init_keys, data_keys = experiment.group_keys(range(num), group)
  return create_train_state(exp.model, tx, init_keys, exp.dataset.image_shape), data_keys


def train_bank(exp: Experiment, root: Path, group: str, subsets, *, proxy: bool = False
               ) -> TrainState:
  """Train (or resume, or reload) K models, model k on the training rows `subsets[k]`.

  With `proxy`, after every epoch the true-class probability of every model on every training
  example is averaged over the models that trained on it and saved as `proxy/<epoch>.npy`
  (the learning-event confidence, `metrics.confidence_proxy` with `keep`)."""
  t = exp.config.train
  x, y = exp.dataset.train.x, np.asarray(exp.dataset.train.y)
  steps, tx = _recipe(exp.config, subsets.shape[1])
  state, data_keys = _init(exp, group, subsets.shape[0], tx)
  keep = designs.keep_mask(subsets, len(y))
  proxy_dir = root / "proxy"
  proxy_dir.mkdir(parents=True, exist_ok=True)

  def log_proxy(epoch: int, st: TrainState) -> None:
    logits = predict(st, x, batch_size=t.eval_batch_size, model_axis=t.model_axis)
    p = np.asarray(jax.nn.softmax(logits, -1))[:, np.arange(len(y)), y]  # [K, n]
    mean_in = (p * keep).sum(0) / np.maximum(keep.sum(0), 1)
    io.atomic_savez(proxy_dir / f"{epoch}.npz", p=mean_in.astype(np.float64))

  return reference.train_group(
      state, x, y, key=data_keys, epochs=t.epochs, batch_size=t.batch_size,
      run_dir=root / "models" / group, checkpoint_every=t.checkpoint_every,
      model_axis=t.model_axis, progress=exp.config.progress, desc=group,
      eval_batch_size=t.eval_batch_size, on_epoch_end=log_proxy if proxy else None,
      subsets=subsets, model_chunk=model_chunk(exp.config.shadows))


def model_chunk(s: Mapping) -> int:
  """Models trained at a time within an epoch (`train.fit(model_chunk=...)`): `model_chunk`,
  or for -1 (default) 8 on CPU, where 128 stacked MLPs train 2x faster in chunks of 8 than all
  at once (docs/platform.md), and all at once on accelerators."""
  c = int(s.get("model_chunk", -1))
  return (8 if jax.default_backend() == "cpu" else 0) if c == -1 else c


def train_logits(root: Path, name: str, state: TrainState, exp: Experiment) -> dict:
  """Logits `[K, n, C]` of a bank on the whole training set (`train`) and on the test split
  (`test`), saved as `logits/<name>.npz`; reused when present."""
  path = root / "logits" / f"{name}.npz"
  if path.exists():
    return _load(path)
  t = exp.config.train
  out = {split: np.asarray(predict(state, getattr(exp.dataset, split).x,
                                   batch_size=t.eval_batch_size, model_axis=t.model_axis),
                           np.float32) for split in LOGIT_SPLITS}
  path.parent.mkdir(parents=True, exist_ok=True)
  io.atomic_savez(path, **out)
  return out


# ----------------------------------------------------------------------------------------------
# Memorisation.


def memorization_scores(root: Path, logits: np.ndarray, labels: np.ndarray, keep: np.ndarray,
                        epochs: int) -> dict:
  """Feldman-Zhang scores from the bank's final logits, and the confidence proxy from the
  epochs logged in `proxy/` (all of them unless the run was killed between a checkpoint and
  its proxy file: the count is recorded)."""
  correct = np.argmax(logits, -1) == labels[None]
  fz = feldman_zhang(correct, keep)
  files = sorted((root / "proxy").glob("*.npz"), key=lambda p: int(p.stem))
  per_epoch = (np.stack([experiment.load_workdir_npz(f, "a proxy epoch")["p"] for f in files])
               if files else None)
  proxy = per_epoch.mean(0) if per_epoch is not None else np.full(len(labels), np.nan)
  return {**fz, "proxy": proxy, "proxy_epochs": len(files), "epochs": epochs,
          "spearman_score_proxy": spearman(fz["score"], proxy)}


def write_scores(path: Path, scores: Mapping, dataset_name: str, labels: np.ndarray) -> None:
  """The scores file `forget.kind=memorization` reads (`data.forget.load_memorization_scores`):
  `score` = Feldman-Zhang memorisation (higher = more memorised), `stderr`, `proxy` = the name
  of the score (`feldman_zhang`), `confidence` = the learning-event confidence proxy (mean
  true-class probability; higher = *less* memorised), `dataset`, `labels`, `n_in`, `n_out`."""
  io.atomic_savez(path, score=scores["score"], stderr=scores["stderr"],
                  proxy=np.asarray("feldman_zhang"), confidence=scores["proxy"],
                  n_in=scores["n_in"], n_out=scores["n_out"], dataset=np.asarray(dataset_name),
                  labels=np.asarray(labels, np.int32))


def prepare(config, workdir, *, needs_forget: bool = True) -> dict:
  """Every check of the shadow stage, writing nothing: the shadows section against the real
  training set, the design (built in memory) and the settings recorded in the workdir."""
  check_config(config, needs_forget=needs_forget)
  if needs_forget:
    method_names(config)
  dataset = validate.load_data(config)
  n = len(dataset.train)
  check_config(config, n, needs_forget=needs_forget)
  design = make_design(config, dataset) if needs_forget else dict(zip(
      ("subsets", "keep"), designs.random_subsets(int(config.shadows.num), n,
                                                  seed=int(config.shadows.seed),
                                                  design=config.shadows.design)))
  settings = shadow_settings(config)
  _check_recorded(Path(workdir) / "shadows", settings)
  design.update({f"{split}_labels": np.asarray(getattr(dataset, split).y, np.int32)
                 for split in LOGIT_SPLITS})
  return {"design": design, "settings": settings}


def write_plan(exp: Experiment, plan: Mapping) -> tuple[Path, dict]:
  """After `experiment.setup`: record the shadow settings and design; `(root, design)`."""
  root = exp.layout.root / "shadows"
  root.mkdir(parents=True, exist_ok=True)
  if not (root / "config.json").exists():
    io.atomic_write_json(root / "config.json", plan["settings"])
  io.atomic_savez(root / "design.npz", **plan["design"])
  return root, plan["design"]


def _setup(config, workdir, *, needs_forget: bool):
  """`prepare` (every check), `experiment.setup` (the main config), then the first writes."""
  plan = prepare(config, workdir, needs_forget=needs_forget)
  exp = experiment.setup(config, workdir, methods=needs_forget)
  root, design = write_plan(exp, plan)
  return exp, root, design


def run_memorization(config, workdir) -> dict:
  """Train the shadow originals and write `DIR/memorization.npz` and `DIR/shadows/scores.json`."""
  t0 = time.perf_counter()
  exp, root, design = _setup(config, workdir, needs_forget=False)
  labels = np.asarray(exp.dataset.train.y)
  state = train_bank(exp, root, GROUPS[0], design["subsets"], proxy=True)
  logits = train_logits(root, GROUPS[0], state, exp)["train"]
  scores = memorization_scores(root, logits, labels, design["keep"], config.train.epochs)
  path = exp.layout.root / "memorization.npz"
  write_scores(path, scores, exp.dataset.name, labels)
  test_acc = np.asarray(jnp.mean(jnp.argmax(predict(
      state, exp.dataset.test.x, model_axis=config.train.model_axis), -1)
      == jnp.asarray(exp.dataset.test.y), -1))
  summary = _memorization_summary(scores, design, test_acc, path)
  summary["wall_s"] = time.perf_counter() - t0
  io.atomic_write_json(root / "scores.json", summary)
  return summary


def _memorization_summary(scores: Mapping, design: Mapping, test_acc, path: Path) -> dict:
  """Histogram, spread and proxy correlation of the scores (and the bank's test accuracy)."""
  s = scores["score"]
  finite = np.isfinite(s)
  hist, edges = np.histogram(s[finite], bins=20, range=(-1, 1))
  return {"scores_file": str(path), "models": int(design["keep"].shape[0]),
          "examples": int(len(s)), "scored": int(finite.sum()),
          "in_per_example": [int(scores["n_in"].min()), int(scores["n_in"].max())],
          "mean_score": float(np.nanmean(s)), "median_score": float(np.nanmedian(s)),
          "share_above_0.5": float(np.mean(s[finite] > 0.5)),
          "median_stderr": float(np.nanmedian(scores["stderr"])),
          "spearman_score_proxy": float(scores["spearman_score_proxy"]),
          "proxy_epochs": int(scores["proxy_epochs"]),
          "histogram": {"edges": edges.tolist(), "counts": hist.tolist()},
          **({} if test_acc is None else {"test_accuracy": {
              "mean": float(np.mean(test_acc)), "std": float(np.std(test_acc))}})}


# ----------------------------------------------------------------------------------------------
# U-LiRA.


def shadow_data(exp: Experiment, design: Mapping) -> UnlearnData:
  """Every model's own split as rows of the training set (`UnlearnData` with indices)."""
  x, y = exp.dataset.train.x, np.asarray(exp.dataset.train.y, np.int32)
  return UnlearnData(retain_x=x, retain_y=y, forget_x=x, forget_y=y,
                     num_classes=exp.dataset.num_classes, model=exp.model,
                     image_shape=exp.dataset.image_shape, model_axis=exp.config.train.model_axis,
                     retain_index=jnp.asarray(design["retain_index"]),
                     forget_index=jnp.asarray(design["forget_index"]))


def run_shadow_method(exp: Experiment, root: Path, name: str, hparams: dict,
                      original: TrainState, data: UnlearnData) -> dict:
  """Unlearn every shadow model's own forget set with method `name` (one stacked run); save
  the logits on the training set and `methods/<name>.json` (last). Reused when done with the
  same hyperparameters; a failure is recorded, not raised."""
  path = root / "methods" / f"{name}.json"
  logits_path = root / "logits" / f"{name}.npz"
  if path.exists() and logits_path.exists():
    try:
      record = io.read_json(path)
    except ValueError:
      record = {}
    if record.get("status") == "done" and record.get("config") == io.to_jsonable(hparams):
      return {**record, "reused": True}
  record = {"method": name, "config": io.to_jsonable(hparams)}
  try:
    num = int(exp.config.shadows.num)
    keys = method_keys(range(num), "shadow/" + name)
    if name == "single_gradient" and hparams.get("reference") == "initial":  # w_0: the bank's init
      w0, _ = _init(exp, GROUPS[0], num, optax.identity())
      result = get_method(name).unlearn(original, data, hparams, keys, reference_state=w0)
    else:
      result = run_method(name, original, data, hparams, keys)
    state = jax.block_until_ready(result.state)
    logits_path.unlink(missing_ok=True)
    train_logits(root, name, state, exp)
    record.update(status="done", cost=io.to_jsonable(result.cost),
                  diverged=np.atleast_1d(np.asarray(result.diverged)).tolist())
  except Exception as e:  # noqa: BLE001 - one method's failure must not stop the others
    record.update(status="failed", error=f"{type(e).__name__}: {e}",
                  traceback=traceback.format_exc(limit=8))
    logging.warning("shadow unlearning with '%s' failed: %s", name, record["error"])
  path.parent.mkdir(parents=True, exist_ok=True)
  io.atomic_write_json(path, record)
  return {**record, "reused": False}


def ulira_row(stat: np.ndarray, design: Mapping, out_stat: np.ndarray, s: Mapping) -> dict:
  """`metrics.ulira` of one side (a method's unlearned models, or a control) in this design
  (`s`: the shadows section)."""
  n = design["keep"].shape[1]
  pool = np.zeros(n, bool)
  pool[design["pool"]] = True
  k = design["keep"].shape[0]
  targets = list(range(k - int(s["targets"]), k))
  res = ulira(stat, design["keep"], forgotten_mask(design, n), out_stat, ~design["keep"],
              targets, pool=pool, cap=int(s["cap"]), fix_variance=bool(s["fix_variance"]),
              exclude_all_targets=True, seed=int(s["seed"]))
  fprs = list(res["fprs"])
  row = {m: {"mean": float(res[f"{m}_mean"]), "std": float(res[f"{m}_std"])}
         for m in ("accuracy", "auc", "balanced_accuracy")}
  tpr = np.asarray(res["tpr_at_fpr"], np.float64)
  for j, f in enumerate(fprs):
    row[f"tpr@{f:g}"] = {"mean": float(np.nanmean(tpr[:, j])), "std": float(np.nanstd(tpr[:, j]))}
  row["per_target_accuracy"] = np.asarray(res["accuracy"], np.float64).tolist()
  row["members"] = int(np.sum(res["n_members"]))
  row["nonmembers"] = int(np.sum(res["n_nonmembers"]))
  return row


def shadow_stage(exp: Experiment, root: Path, design: Mapping) -> list[str]:
  """Train (or reuse) the shadow originals and oracles, run every method on every shadow
  model's own forget set, save all logits and `memorization.npz`; the method names."""
  config = exp.config
  labels = np.asarray(exp.dataset.train.y)
  names = method_names(config)
  original = train_bank(exp, root, GROUPS[0], design["subsets"], proxy=True)
  logits = train_logits(root, GROUPS[0], original, exp)
  scores = memorization_scores(root, logits["train"], labels, design["keep"], config.train.epochs)
  write_scores(exp.layout.root / "memorization.npz", scores, exp.dataset.name, labels)
  oracle = train_bank(exp, root, GROUPS[1], design["retain_index"])
  train_logits(root, GROUPS[1], oracle, exp)
  del oracle
  data = shadow_data(exp, design)
  for name in tqdm(names, desc="shadow methods", disable=not config.progress, leave=False):
    hp = exp.hparams[name]
    if isinstance(hp, Exception):
      path = root / "methods" / f"{name}.json"
      path.parent.mkdir(parents=True, exist_ok=True)
      io.atomic_write_json(path, {"method": name, "status": "failed", "error": str(hp)})
      continue
    run_shadow_method(exp, root, name, hp, original, data)
  return names


def _accuracy_rows(logits: Mapping, labels: np.ndarray, test_y: np.ndarray, design: Mapping
                   ) -> dict:
  """Per side: accuracy of each model on its own forget and retain rows and on the test split,
  mean ± std over the models."""
  right = np.argmax(logits["train"], -1) == labels[None]
  own = lambda idx: np.take_along_axis(right, np.asarray(idx, np.int64), axis=1).mean(1)
  per = {"forget": own(design["forget_index"]), "retain": own(design["retain_index"]),
         "test": (np.argmax(logits["test"], -1) == test_y[None]).mean(1)}
  return {k: {"mean": float(v.mean()), "std": float(v.std())} for k, v in per.items()}


def halves(role: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Two disjoint halves of each example's models: `role [K, n]` (model k is in example j's
  group) split alternately along one fixed random order of the models, `(A, B)`, |A| - |B| in
  {0, 1}."""
  order = np.random.default_rng(seed).permutation(role.shape[0])
  r = role[order]
  rank = np.cumsum(r, 0) - 1
  a, b = np.zeros_like(role), np.zeros_like(role)
  a[order], b[order] = r & (rank % 2 == 0), r & (rank % 2 == 1)
  return a, b


def shadow_klom(margins: Mapping[str, Mapping[str, np.ndarray]], design: Mapping, seed: int
                ) -> dict:
  """KLOM (`metrics.klom`) of every side in the shadow design, P95 per split, and its ceiling.

  EasyDUB's KLOM compares N unlearned models with N oracles, all with one forget set. Here each
  model has its own, so for every example the models are those in which it plays the split's
  role: forget (x in model k's forget set), retain (x in its retain rows), validation (every
  model). These are split into two disjoint halves A_x, B_x (`halves`); a side scores
  KL(side on A_x ‖ oracle on B_x) and the ceiling is KL(oracle on A_x ‖ oracle on B_x): the
  same sample sizes and disjoint models, so the ceiling is the small-sample floor of the
  methods' numbers (an oracle scored against itself would be 0). Returns per side the P95 per
  split and, under `median`, the P50 (with a few models per half the histograms of even two
  oracle halves rarely overlap, so P95 sits near its maximum ln(1e5) ≈ 11.5 for every side;
  the median still separates them)."""
  n = design["keep"].shape[1]
  forgotten = forgotten_mask(design, n)
  roles = {"forget": forgotten, "retain": design["keep"] & ~forgotten}
  k, nv = design["keep"].shape[0], margins[GROUPS[1]]["validation"].shape[1]
  masks = {r: halves(m, seed) for r, m in roles.items()}
  masks["validation"] = halves(np.ones((k, nv), bool), seed)
  oracle = margins[GROUPS[1]]
  pct = lambda per, q: float(np.nanpercentile(per, q)) if np.isfinite(per).any() else float("nan")
  out = {}
  for side, m in margins.items():
    row = {"median": {}}
    for split, (a, b) in masks.items():
      src = "validation" if split == "validation" else "train"
      per = klom(m[src], oracle[src], unlearned_mask=a, oracle_mask=b)
      row[split], row["median"][split] = pct(per, 95), pct(per, 50)
    out[side] = row
  return out


def shadow_results(config: Mapping, root: Path) -> dict:
  """U-LiRA, KLOM and accuracies of every side from the saved files of `shadow_stage` (no
  model is run: `experiments.evaluate` recomputes these). `config`: the experiment's config
  (a ConfigDict or the recorded config.json)."""
  design = _load(root / "design.npz")
  labels, val_y, test_y = (design[f"{s}_labels"] for s in LOGIT_SPLITS)
  s = dict(config["shadows"])
  names = method_names(config)
  records = {}
  for name in names:
    path = root / "methods" / f"{name}.json"
    try:
      records[name] = io.read_json(path) if path.exists() else {"status": "missing"}
    except ValueError:
      raise WorkdirError(f"{path} is corrupted; delete it and rerun") from None
  sides = {"retrain (control)": GROUPS[1], "original (no unlearning)": GROUPS[0]}
  sides.update({n: n for n in names if records[n].get("status") == "done"})
  logits = {k: _load(root / "logits" / f"{v}.npz") for k, v in sides.items()}
  phi = {k: np.asarray(logit_scaled_confidence(v["train"], labels[None]), np.float64)
         for k, v in logits.items()}
  out = phi["original (no unlearning)"]
  margins = {k: {"train": phi[k], "validation": np.asarray(logit_scaled_confidence(
      v["validation"], val_y[None]), np.float64)} for k, v in logits.items()}
  kloms = shadow_klom({GROUPS[1]: margins["retrain (control)"], **margins}, design,
                      int(s["seed"]))
  rows = {}
  for k in sides:
    rows[k] = {**ulira_row(phi[k], design, out, s),
               "accuracy_of_models": _accuracy_rows(logits[k], labels, test_y, design),
               "klom": kloms[k]}
  scores = experiment.load_workdir_npz(root.parent / "memorization.npz", "memorisation scores")
  return {
      "models": int(s["num"]), "targets": int(s["targets"]), "pool": int(s["pool"]),
      "forget_size": int(s["forget_size"]), "design": s["design"],
      "pool_kind": (f"memorisation {s['pool_level']}" if s.get("pool_scores") else "random"),
      "fix_variance": bool(s["fix_variance"]), "ulira": rows,
      "klom_ceiling": kloms[GROUPS[1]],
      "methods": {k: {kk: v for kk, v in r.items() if kk != "traceback"}
                  for k, r in records.items()},
      "memorization": _memorization_summary(
          {"score": scores["score"], "stderr": scores["stderr"], "n_in": scores["n_in"],
           "spearman_score_proxy": spearman(scores["score"], scores["confidence"]),
           "proxy_epochs": len(list((root / "proxy").glob("*.npz")))},
          design, None, root.parent / "memorization.npz")}


def _load(path: Path) -> dict:
  try:
    return experiment.load_workdir_npz(path, "a shadow-model file")
  except FileNotFoundError:
    raise WorkdirError(f"{path} is missing; rerun the command that makes it") from None


def run_shadow_eval(config, workdir) -> dict:
  """The whole U-LiRA evaluation (module docstring); also writes the memorisation scores."""
  t0 = time.perf_counter()
  exp, root, design = _setup(config, workdir, needs_forget=True)
  shadow_stage(exp, root, design)
  summary = shadow_results(config, root)
  summary["wall_s"] = time.perf_counter() - t0
  io.atomic_write_json(root / "results.json", summary)
  (root / "report.md").write_text(report_md(summary))
  return summary


def report_md(summary: Mapping, title: str = "# U-LiRA on shadow models", sub: str = "##"
              ) -> str:
  """`shadows/report.md` (and the main report's shadow section): the U-LiRA and KLOM table with
  its controls, and the memorisation summary."""
  fmt = lambda d: f"{d['mean']:.3f} ± {d['std']:.3f}"
  lines = [
      title,
      "",
      f"{summary['models']} models, each trained on its own random half of the training set "
      f"(`{summary['design']}`); model k forgets {summary['forget_size']} examples of its "
      f"half drawn from a fixed pool of {summary['pool']} ({summary['pool_kind']}). The last "
      f"{summary['targets']} models are the targets (never used to fit); for each, its forgotten "
      "examples (members) against as many pool examples it never saw (non-members), balanced; "
      "in = the other unlearned models that forgot the example, out = original models whose "
      f"half excluded it ({'pooled' if summary['fix_variance'] else 'per-example'} σ). Accuracy "
      "of p > 0.5: 0.5 = indistinguishable from never seen (exact unlearning), 1 = nothing "
      "forgotten. Mean ± std over the targets; the accuracies of the models (own forget rows, "
      "test split) are mean ± std over all models.",
      "",
      "KLOM (P95 of the per-example KL(side ‖ oracle) of margins, 20 bins; lower is better): "
      "each model has its own forget set, so for every example the models in which it plays "
      "the split's role (forgot it / retained it / all, for validation) are split into two "
      "disjoint halves, the side's half scored against the oracles' other half; the retrain "
      "row is oracle half vs oracle half, the small-sample ceiling (floor) of the others. "
      "Cells: P95 (P50). EasyDUB uses 100 models per side; with the few models per half here "
      "P95 is close to its maximum ln(1e5) ≈ 11.5 even for the ceiling, so read the P50 too.",
      "",
      "| side | U-LiRA accuracy | AUC | TPR @ 1 % FPR | TPR @ 0.1 % FPR | members / non-members "
      "| forget acc. | test acc. | KLOM forget | KLOM retain | KLOM val |",
      "|---|---|---|---|---|---|---|---|---|---|---|"]
  for name, r in summary["ulira"].items():
    acc, kl = r["accuracy_of_models"], r["klom"]
    lines.append(f"| {name} | {fmt(r['accuracy'])} | {fmt(r['auc'])} | {fmt(r['tpr@0.01'])} | "
                 f"{fmt(r['tpr@0.001'])} | {r['members']} / {r['nonmembers']} | "
                 f"{fmt(acc['forget'])} | {fmt(acc['test'])} | "
                 + " | ".join(f"{kl[s]:.2f} ({kl['median'][s]:.2f})"
                              for s in ("forget", "retain", "validation")) + " |")
  for name, r in summary["methods"].items():
    if r.get("status") != "done":
      lines.append(f"| {name} | {r.get('status')}: {str(r.get('error', ''))[:120]} |"
                   + " |" * 10)
  m = summary["memorization"]
  lines += [
      "",
      f"{sub} Memorisation scores (Feldman-Zhang, from the same models)",
      "",
      f"{m['scored']} of {m['examples']} examples scored ({m['in_per_example'][0]}-"
      f"{m['in_per_example'][1]} models in per example); mean {m['mean_score']:.3f}, median "
      f"{m['median_score']:.3f}, {100 * m['share_above_0.5']:.1f} % above 0.5; median standard "
      f"error {m['median_stderr']:.3f}. Spearman with the confidence proxy (mean true-class "
      f"probability over {m['proxy_epochs']} epochs): {m['spearman_score_proxy']:.3f} "
      "(expected negative: memorised examples are learnt late). Scores file: `memorization.npz`.",
      ""]
  if "wall_s" in summary:
    lines += [f"Wall time of this invocation: {summary['wall_s']:.0f} s.", ""]
  return "\n".join(lines)
