"""The correlation study of Thudi et al., "Unrolling SGD" (behind `experiments.unroll_sgd`).

  run_unroll_sgd(config, workdir) -> summary       pretrain, sweep, report (resumable)
  analyze(records, config) -> results             correlations, tables, headline claims

Stages (`20-unroll.md` §6, the public code's `correlation_verification.py` at our scale):
1. Pretrain once per SD-loss λ (`pretrain/lam_<λ>/`, resumable per epoch as every reference
   group: `reference.train_group`), with the SD loss `unroll.sd_objective(λ)`.
2. For each λ, one vmapped lockstep unroll (`unroll.drive`) over every (learning rate, seed):
   from the pretrained weights w_0, M and M' fine-tune for `sweep.epochs` epochs at constant η with
   B* (one random batch) at the front of each epoch; per step the scalars of `unlearn_jax.unroll`
   (||w_t - w_0||, ||w_t - w'_t||, the verification errors of single-gradient unlearning), σ
   every `sigma_every` steps. Saved as `unroll/lam_<λ>.npz` (a finished λ is not recomputed).
3. The report (recomputed from the saved records on every run): unlearning errors
   (`unroll.unlearning_errors`), Pearson and Spearman r of unlearning error vs verification error
   over every (λ, η, seed, t) point with bootstrap intervals over runs (whole runs resampled,
   since the points of one run are not independent), per-step curves, the SD table, single
   gradient vs doing nothing, and the spec's headline claims checked one by one.
"""

from __future__ import annotations

import functools
import math
import time
from pathlib import Path
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from unlearn_jax import claims as C
from unlearn_jax import io
from unlearn_jax import unroll as U
from unlearn_jax.errors import ConfigError, TrainingDivergedError, WorkdirError
from unlearn_jax.models import build_model_from_config, count_params
from unlearn_jax.pipelines import experiment, reference, validate
from unlearn_jax.pipelines.layout import Workdir
from unlearn_jax.train import (SCHEDULES, check_batch_size, create_train_state, evaluate,
                               make_optimizer, make_train_step)

RESULT_SECTIONS = ("data", "model", "pretrain", "sweep")
ERRORS = ("e", "e_rolling", "e_ckpt", "e_sqrt")
VERIFICATIONS = ("ver_sg", "ver_none", "ver_sg_momentum")


# ----------------------------------------------------------------------------------------------
# Config and workdir.


def check_config(config) -> None:
  """Every field of the config (one-line `ConfigError`s naming the field)."""
  validate.check_process_options(config)
  c = validate
  c.check_real(config, "data.validation_fraction", 0, 1, 0.1, hi_open=True)
  c.check_int(config, "data.max_train_examples", 1, 1000, optional=True)
  c.check_choice(config, "model.name", ("mlp", "cnn", "allcnn", "resnet18", "preact_resnet18"))
  c.check_real(config, "model.width", 0, math.inf, 1.0, lo_open=True)
  c.check_int(config, "pretrain.epochs", 1, 20)
  c.check_int(config, "pretrain.batch_size", 1, 128)
  c.check_real(config, "pretrain.learning_rate", 0, math.inf, 0.1, lo_open=True)
  c.check_real(config, "pretrain.momentum", 0, 1, 0.9, hi_open=True)
  c.check_real(config, "pretrain.weight_decay", 0, math.inf, 5e-4)
  c.check_choice(config, "pretrain.schedule", SCHEDULES)
  c.check_int(config, "pretrain.seed", 0, 0)
  s = config.sweep
  for path, values, example in (("sweep.lambdas", s.lambdas, "0,1,10"),
                                ("sweep.learning_rates", s.learning_rates, "0.01,0.1")):
    vals = list(values) if isinstance(values, (tuple, list)) else [values]
    lo_ok = (lambda v: v >= 0) if path == "sweep.lambdas" else (lambda v: v > 0)
    if not vals or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                           and math.isfinite(v) and lo_ok(v) for v in vals):
      raise ConfigError(f"config.{path} must be a non-empty list of finite numbers "
                        f"{'>= 0' if path == 'sweep.lambdas' else '> 0'}, got {values!r}; set "
                        f"e.g. --config.{path}={example}")
    if len(set(map(float, vals))) != len(vals):
      raise ConfigError(f"config.{path} lists a value twice: {values!r}; give distinct values")
  c.check_seeds(config, "sweep.seeds")
  c.check_int(config, "sweep.batch_size", 1, 32)
  c.check_int(config, "sweep.epochs", 1, 1)
  c.check_int(config, "sweep.max_steps", 1, 16, optional=True)
  c.check_real(config, "sweep.momentum", 0, 1, 0.9, hi_open=True)
  c.check_real(config, "sweep.weight_decay", 0, math.inf, 5e-4)
  c.check_int(config, "sweep.sigma_every", 1, 4)
  c.check_int(config, "sweep.hessian_examples", 1, 512)
  c.check_real(config, "sweep.power_tol", 0, 1, 1e-3, lo_open=True)
  c.check_int(config, "sweep.power_max_iter", 1, 100)
  c.check_int(config, "sweep.checkpoint_every", 1, 28)
  c.check_choice(config, "sweep.sigma_form", U.SIGMA_FORMS)
  c.check_choice(config, "sweep.driver", U.DRIVERS)
  c.check_int(config, "analysis.bootstrap", 0, 1000)
  c.check_int(config, "analysis.bootstrap_seed", 0, 0)
  c.check_real(config, "analysis.strong_r", 0, 1, 0.7)
  c.check_real(config, "analysis.max_accuracy_cost", 0, 1, 0.05)
  c.check_real(config, "analysis.growth_rho", -1, 1, 0.5)
  c.check_real(config, "analysis.alpha", 0, 1, 0.05, lo_open=True, hi_open=True)
  c.check_choice(config, "analysis.paired_test", ("sign", "wilcoxon"))
  c.check_bool(config, "analysis.plots")
  c.check_int(config, "eval_batch_size", 1, 1000)


def plan(config):
  """Check the config, load the data, build the model and check the sizes (nothing written)."""
  check_config(config)
  dataset = validate.load_data(config)
  with validate.section("model"):
    model = build_model_from_config(config.model.to_dict(), dataset.num_classes)
  n = len(dataset.train)
  s = config.sweep
  if config.pretrain.batch_size > n:
    raise ConfigError(f"config.pretrain.batch_size = {config.pretrain.batch_size} exceeds the "
                      f"{n} training examples; set e.g. --config.pretrain.batch_size=128")
  if 2 * s.batch_size > n:
    raise ConfigError(f"config.sweep.batch_size = {s.batch_size} leaves no batch besides B* in "
                      f"the {n} training examples; set e.g. --config.sweep.batch_size=32")
  if s.hessian_examples > n:
    raise ConfigError(f"config.sweep.hessian_examples = {s.hessian_examples} exceeds the {n} "
                      f"training examples; set e.g. --config.sweep.hessian_examples={min(n, 512)}")
  steps = num_steps(config, n)
  if steps < 1:
    raise ConfigError(f"config.sweep.sigma_every = {s.sigma_every} exceeds the {steps_raw(config, n)}"
                      f" fine-tuning steps; set e.g. --config.sweep.sigma_every=1")
  return dataset, model


def steps_raw(config, n: int) -> int:
  s = config.sweep
  t = s.epochs * (1 + (n - s.batch_size) // s.batch_size)
  return t if s.max_steps is None else min(t, s.max_steps)


def num_steps(config, n: int) -> int:
  """T: the fine-tuning steps, cut to a multiple of `sigma_every`."""
  t = steps_raw(config, n)
  return t - t % config.sweep.sigma_every


def _result_part(config) -> dict:
  return {k: io.to_jsonable(config.get(k)) for k in RESULT_SECTIONS}


def check_workdir(config, layout: Workdir) -> None:
  """A workdir holding results of another config is refused (nothing written)."""
  experiment.check_workdir_path(layout.root)
  if not layout.config.exists():
    return
  stored = experiment.read_workdir_json(layout.config, "the recorded config")
  held = any(p.is_dir() and any(f.is_file() for f in p.rglob("*"))
             for p in (layout.root / "pretrain", layout.root / "unroll"))
  differ = [k for k in RESULT_SECTIONS if stored.get(k) != _result_part(config)[k]]
  if differ and held:
    raise WorkdirError(f"workdir {layout.root} was made with a different config (sections "
                       f"{', '.join(differ)} differ); use a fresh --workdir or the same config")


def _tag(lam: float) -> str:
  return f"lam_{float(lam):g}"


# ----------------------------------------------------------------------------------------------
# Stage 1: pretraining (one model per λ).


def pretrain(config, dataset, model, workdir: Path, lam: float):
  """Train (or resume, or reload) the pretrained model of SD-loss λ; returns (state, record)."""
  p = config.pretrain
  x, y = dataset.train.x, dataset.train.y
  steps = check_batch_size(p.batch_size, len(x))
  tx = make_optimizer(learning_rate=p.learning_rate, total_steps=p.epochs * steps,
                      momentum=p.momentum, weight_decay=p.weight_decay, schedule=p.schedule)
  key = jax.random.PRNGKey(p.seed)
  state = create_train_state(model, tx, jax.random.fold_in(key, 0), dataset.image_shape)
  run_dir = workdir / "pretrain" / _tag(lam)
  try:
    state = reference.train_group(
        state, x, y, key=jax.random.fold_in(key, 1), epochs=p.epochs, batch_size=p.batch_size,
        run_dir=run_dir, train_step_fn=make_train_step(U.sd_objective(float(lam))),
        progress=config.progress, desc=f"pretrain λ={float(lam):g}",
        eval_batch_size=config.eval_batch_size)
  except reference.Diverged as e:
    import shutil
    shutil.rmtree(run_dir, ignore_errors=True)
    raise TrainingDivergedError(
        f"pretraining with SD-loss λ={float(lam):g} diverged at epoch {e.epoch} (loss {e.loss}); "
        f"lower --config.pretrain.learning_rate or drop λ={float(lam):g} from "
        "--config.sweep.lambdas") from None
  test = evaluate(state, dataset.test.x, dataset.test.y, batch_size=config.eval_batch_size)
  train = evaluate(state, x, y, batch_size=config.eval_batch_size)
  log = io.read_jsonl(run_dir / "metrics.jsonl")
  return state, {"test_accuracy": float(test["accuracy"]), "train_accuracy":
                 float(train["accuracy"]), "wall_s": log[-1]["wall_s"] if log else 0.0}


# ----------------------------------------------------------------------------------------------
# Stage 2: the lockstep unroll of every (η, seed) of one λ, as one vmapped program.


def runs_of(config) -> list[tuple[float, int]]:
  """(η, seed) of every run of one λ, in the order of the vmapped axis."""
  return [(float(lr), int(s)) for lr in config.sweep.learning_rates for s in config.sweep.seeds]


def seed_steps(config, n: int, seed: int):
  """B*, the data order and the power-iteration key of one seed (shared by every η and λ)."""
  s = config.sweep
  key = jax.random.fold_in(jax.random.PRNGKey(seed), 7)
  bstar = np.asarray(jax.random.permutation(jax.random.fold_in(key, 0), n))[:s.batch_size]
  idx, forget = U.forget_first_order(n, s.batch_size, np.sort(bstar), jax.random.fold_in(key, 1),
                                     epochs=s.epochs)
  t = num_steps(config, n)
  return idx[:t], forget[:t], jax.random.fold_in(key, 2)


@functools.lru_cache(maxsize=None)
def _stacked_logits(apply_fn):
  return jax.jit(jax.vmap(lambda p, s, xb: apply_fn(p, s, xb, False)[0], in_axes=(0, 0, None)))


def _test_accuracy(model, params, model_state, x, y, batch: int) -> np.ndarray:
  """Test accuracy of N stacked models (inference mode)."""
  fn = _stacked_logits(model.apply)
  correct = 0
  for i in range(0, len(x), batch):
    logits = fn(params, model_state, jnp.asarray(x[i:i + batch]))
    correct = correct + np.asarray(jnp.argmax(logits, -1) == jnp.asarray(y[i:i + batch])).sum(1)
  return correct / len(x)


def sweep_lambda(config, dataset, model, state, lam: float) -> dict[str, np.ndarray]:
  """Unroll every (η, seed) from the pretrained `state` of λ; numpy records."""
  s = config.sweep
  x, y = jnp.asarray(dataset.train.x), jnp.asarray(dataset.train.y)
  n = len(x)
  runs = runs_of(config)
  per_seed = {sd: seed_steps(config, n, sd) for sd in {r[1] for r in runs}}
  t = num_steps(config, n)
  steps = dict(idx=jnp.asarray(np.stack([per_seed[sd][0] for _, sd in runs])),
               forget=jnp.asarray(np.stack([per_seed[sd][1] for _, sd in runs])),
               lr=jnp.asarray(np.stack([np.full(t, lr, np.float32) for lr, _ in runs])))
  keys = jnp.stack([per_seed[sd][2] for _, sd in runs])
  k = len(runs)
  stack = lambda tree: jax.tree_util.tree_map(lambda a: jnp.stack([a] * k), tree)
  h = s.hessian_examples
  data = dict(x=x, y=y, hx=x[:h], hy=y[:h])
  unroll = U.make_unroll(model.apply, momentum=float(s.momentum),
                         weight_decay=float(s.weight_decay), record="scalars",
                         every=int(s.sigma_every), checkpoint_every=int(s.checkpoint_every),
                         sigma=True, power_tol=float(s.power_tol),
                         power_max_iter=int(s.power_max_iter),
                         inner_unroll=True if s.driver == "python" else 1)
  out = U.drive(unroll, stack(state.params), stack(state.model_state), steps, data,
                jnp.full((k,), float(lam), jnp.float32), keys, in_axes=(0, 0, 0, None, 0, 0),
                driver=s.driver)
  fin = out["final"]
  tx, ty = dataset.test.x, dataset.test.y
  sg = jax.tree_util.tree_map(lambda w, g: w + fin["c_sg"].reshape((-1,) + (1,) * (w.ndim - 1)) * g,
                              fin["w"], fin["g0"])
  rec = {f"steps_{k2}": np.asarray(v) for k2, v in out["steps"].items()}
  rec.update({f"chunks_{k2}": np.asarray(v) for k2, v in out["chunks"].items()})
  rec.update(lr=np.asarray([r[0] for r in runs]), seed=np.asarray([r[1] for r in runs]),
             lam=np.full(k, float(lam)),
             test_acc_m=_test_accuracy(model, fin["w"], fin["s"], tx, ty, config.eval_batch_size),
             test_acc_retrain=_test_accuracy(model, fin["w2"], fin["s2"], tx, ty,
                                             config.eval_batch_size),
             test_acc_sg=_test_accuracy(model, sg, fin["s"], tx, ty, config.eval_batch_size))
  if not np.isfinite(rec["steps_loss"]).all():
    bad = sorted({runs[i] for i in np.flatnonzero(~np.isfinite(rec["steps_loss"]).all(1))})
    raise TrainingDivergedError(f"the fine-tuning of λ={float(lam):g} diverged for (η, seed) "
                                f"{bad}; lower the largest --config.sweep.learning_rates")
  return rec


# ----------------------------------------------------------------------------------------------
# Stage 3: analysis.


def _ranks(a: np.ndarray) -> np.ndarray:
  """Average ranks (ties share their mean rank), as Spearman's r needs."""
  order = np.argsort(a, kind="mergesort")
  ranks = np.empty(len(a), np.float64)
  ranks[order] = np.arange(len(a), dtype=np.float64)
  _, inv, counts = np.unique(a, return_inverse=True, return_counts=True)
  sums = np.bincount(inv, weights=ranks)
  return sums[inv] / counts[inv]


def pearson(a, b) -> float:
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  a, b = a - a.mean(), b - b.mean()
  den = math.sqrt(float((a * a).sum() * (b * b).sum()))
  return float((a * b).sum() / den) if den > 0 else float("nan")


def spearman(a, b) -> float:
  return pearson(_ranks(np.asarray(a)), _ranks(np.asarray(b)))


def correlation(x: np.ndarray, y: np.ndarray, run: np.ndarray, *, bootstrap: int,
                seed: int) -> dict:
  """Pearson and Spearman r of the points (x, y), with 95 % percentile intervals from a
  bootstrap that resamples whole runs (`run`: each point's run id)."""
  ok = np.isfinite(x) & np.isfinite(y)
  x, y, run = x[ok], y[ok], run[ok]
  out = {"points": int(ok.sum()), "pearson": pearson(x, y), "spearman": spearman(x, y),
         "pearson_log": pearson(np.log(np.maximum(x, 1e-30)), np.log(np.maximum(y, 1e-30)))}
  ids = np.unique(run)
  if bootstrap and len(ids) > 1:
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(run == i) for i in ids]
    ps, ss = [], []
    for _ in range(bootstrap):
      pick = np.concatenate([groups[j] for j in rng.integers(0, len(ids), len(ids))])
      ps.append(pearson(x[pick], y[pick]))
      ss.append(spearman(x[pick], y[pick]))
    out["pearson_ci"] = [float(np.nanpercentile(ps, 2.5)), float(np.nanpercentile(ps, 97.5))]
    out["spearman_ci"] = [float(np.nanpercentile(ss, 2.5)), float(np.nanpercentile(ss, 97.5))]
  return out


def point_table(records: Mapping[float, Mapping[str, np.ndarray]], config) -> dict:
  """Every (λ, η, seed, t) point: errors and verification errors, flattened ([runs · T])."""
  s = config.sweep
  cols: dict[str, list] = {}
  run_id = 0
  for lam, r in records.items():
    steps = {k[6:]: v for k, v in r.items() if k.startswith("steps_")}
    eig = r["chunks_eigenvalue"]
    e = U.unlearning_errors(steps, eig, every=int(s.sigma_every),
                            checkpoint_every=int(s.checkpoint_every), sigma_form=s.sigma_form)
    e_sqrt = U.unlearning_errors(steps, eig, every=int(s.sigma_every), sigma_form="sqrt")["e"]
    k, t = steps["delta_w"].shape
    vals = {"e": e["e"], "e_rolling": e["e_rolling"], "e_ckpt": e["e_ckpt"], "e_sqrt": e_sqrt,
            "sigma": e["sigma"], "sigma_avg": e["sigma_avg"],
            "t": np.broadcast_to(e["t"], (k, t)), "delta_w": steps["delta_w"],
            "ver_sg": steps["ver_sg"], "ver_none": steps["ver_none"],
            "ver_sg_momentum": steps["ver_sg_momentum"],
            "lr": np.broadcast_to(r["lr"][:, None], (k, t)),
            "lam": np.full((k, t), lam), "seed": np.broadcast_to(r["seed"][:, None], (k, t)),
            "run": np.broadcast_to(np.arange(run_id, run_id + k)[:, None], (k, t))}
    run_id += k
    for name, v in vals.items():
      cols.setdefault(name, []).append(np.asarray(v, np.float64).reshape(-1))
  return {k: np.concatenate(v) for k, v in cols.items()}


def _mean_std(v) -> dict:
  v = np.asarray(v, np.float64)
  return {"mean": float(np.mean(v)), "std": float(np.std(v))}


def analyze(records: Mapping[float, Mapping[str, np.ndarray]], pretrained: Mapping[float, dict],
            config) -> dict:
  """Correlations, tables and the headline claims from the saved records."""
  a = config.analysis
  pts = point_table(records, config)
  corr = {f"{e}|{v}": correlation(pts[e], pts[v], pts["run"], bootstrap=int(a.bootstrap),
                                  seed=int(a.bootstrap_seed))
          for e in ERRORS for v in VERIFICATIONS}
  lams = sorted(records)
  lrs = [float(v) for v in config.sweep.learning_rates]
  final = {lam: {"ver_sg": r["steps_ver_sg"][:, -1], "ver_none": r["steps_ver_none"][:, -1],
                 "ver_sg_momentum": r["steps_ver_sg_momentum"][:, -1],
                 "delta_w": r["steps_delta_w"][:, -1], "lr": r["lr"],
                 "test_acc_m": r["test_acc_m"], "test_acc_retrain": r["test_acc_retrain"],
                 "test_acc_sg": r["test_acc_sg"]} for lam, r in records.items()}
  last = pts["t"] == pts["t"].max()
  e_final = {lam: pts["e"][last & (pts["lam"] == lam)] for lam in lams}
  sd_rows = []
  for lam in lams:
    f = final[lam]
    row = {"lam": lam, "pretrain_test_acc": pretrained[lam]["test_accuracy"],
           "pretrain_train_acc": pretrained[lam]["train_accuracy"],
           "test_acc": _mean_std(f["test_acc_m"]), "ver_sg": _mean_std(f["ver_sg"]),
           "ver_none": _mean_std(f["ver_none"]), "e": _mean_std(e_final[lam]),
           "delta_w": _mean_std(f["delta_w"]),
           "sigma": _mean_std(np.abs(records[lam]["chunks_eigenvalue"]))}
    for lr in lrs:
      m = np.isclose(f["lr"], lr)
      row[f"ver_sg_lr{lr:g}"] = float(np.mean(f["ver_sg"][m]))
      row[f"e_lr{lr:g}"] = float(np.mean(e_final[lam][m]))
    sd_rows.append(row)
  sg_rows = []
  for lam in lams:
    f = final[lam]
    for lr in lrs:
      m = np.isclose(f["lr"], lr)
      sg_rows.append({"lam": lam, "lr": lr, **{k: _mean_std(f[k][m]) for k in (
          "ver_none", "ver_sg", "ver_sg_momentum", "test_acc_m", "test_acc_retrain",
          "test_acc_sg")}})
  results = {"correlations": corr, "sd": sd_rows, "single_gradient": sg_rows,
             "num_runs": int(len(np.unique(pts["run"]))), "num_points": int(len(pts["run"])),
             "steps": int(pts["t"].max())}
  results["growth"] = growth(pts, records)
  results["within_lr"] = within_lr(pts, lrs)
  results["claims"] = claims(results, config, records, pts)
  return results


def growth(pts: Mapping[str, np.ndarray], records) -> dict:
  """Spearman ρ of the verification error (single gradient, final step) with η across the runs
  of each λ (mean over λ), with t within each run (mean over runs), and with ||w_t - w_0|| over
  every point."""
  rho_lr = []
  for lam, r in records.items():
    if len(np.unique(r["lr"])) > 1:
      rho_lr.append(spearman(r["lr"], r["steps_ver_sg"][:, -1]))
  rho_t = [spearman(np.arange(r["steps_ver_sg"].shape[1]), row)
           for r in records.values() for row in r["steps_ver_sg"]]
  return {"lr": float(np.mean(rho_lr)) if rho_lr else None,
          "t": float(np.mean(rho_t)), "t_positive_runs": float(np.mean(np.asarray(rho_t) > 0)),
          "delta_w": spearman(pts["delta_w"], pts["ver_sg"])}


def within_lr(pts: Mapping[str, np.ndarray], lrs) -> dict:
  """Per η: Spearman r of the verification error with e and with the baselines ‖w_t − w_0‖ and
  t (∝ η²·t within one η) over that η's points, and across runs at the final step."""
  last = pts["t"] == pts["t"].max()
  out = {}
  for lr in lrs:
    m = np.isclose(pts["lr"], lr)
    f = m & last
    out[f"{lr:g}"] = {
        "points": int(m.sum()), "runs": int(f.sum()),
        **{f"{x}|ver_sg": spearman(pts[x][m], pts["ver_sg"][m]) for x in ("e", "delta_w", "t")},
        **{f"final_{x}|ver_sg": (spearman(pts[x][f], pts["ver_sg"][f]) if f.sum() > 2
                                 else math.nan) for x in ("e", "delta_w")}}
  return out


def paired_final(records: Mapping[float, Mapping[str, np.ndarray]], pts, lam: float,
                 base: float = 0.0) -> dict[str, np.ndarray]:
  """Final-step (verification error, e) of λ = `lam` and λ = `base` on the same (η, seed)
  pairs: {"ver": [P, 2], "e": [P, 2]} (column 0: `lam`, 1: `base`)."""
  last = pts["t"] == pts["t"].max()
  def at(l):
    r = records[l]
    e = pts["e"][last & (pts["lam"] == l)]
    return {(float(a), int(b)): (float(v), float(x)) for a, b, v, x in
            zip(r["lr"], r["seed"], r["steps_ver_sg"][:, -1], e)}
  a, b = at(lam), at(base)
  keys = sorted(set(a) & set(b))
  return {"ver": np.array([[a[k][0], b[k][0]] for k in keys]).reshape(-1, 2),
          "e": np.array([[a[k][1], b[k][1]] for k in keys]).reshape(-1, 2)}


def _compat(row: dict, test: str, value: str) -> dict:
  """A claims-module row with the keys the one-line summary and the notebook read."""
  return {**row, "claim": row["statement"], "test_text": test, "value_text": value,
          "held": {"held": True, "not held": False}.get(row["verdict"])}


def claims(results: dict, config, records: Mapping[float, Mapping[str, np.ndarray]],
           pts: Mapping[str, np.ndarray]) -> list[dict]:
  """The headline claims of `20-unroll.md` §6 as `unlearn_jax.claims` verdicts: thresholds
  from `config.analysis` (set before the run), a control or baseline per claim, and paired sign
  tests over (η, seed) for the SD loss and for single-gradient unlearning vs doing nothing."""
  a = config.analysis
  alpha = float(a.alpha)
  sec = "20-unroll.md §6"
  out = []
  by_lr = results["within_lr"]
  mean_of = lambda key: float(np.nanmean([v[key] for v in by_lr.values()]))
  c = results["correlations"]["e|ver_sg"]
  # 1. e vs the verification error, within one η (pooled over η, the spread of η drives r)
  r_e, r_dw, r_t = mean_of("e|ver_sg"), mean_of("delta_w|ver_sg"), mean_of("t|ver_sg")
  claim = C.Claim("unlearning error correlates strongly with verification error (within one η)",
                  sec, "mean over η of Spearman r(·, ver)", float(a.strong_r), "greater",
                  "‖w_t − w_0‖ or t alone", "none", alpha)
  out.append(_compat(C.verdict(claim, r_e, control_value=max(r_dw, r_t)),
                     f"Spearman r within each η >= {a.strong_r:g}, and above what ‖w_t − w_0‖ "
                     "or t alone reach",
                     f"e {r_e:.3f} (per η: " + ", ".join(f"{k}: {v['e|ver_sg']:.2f}"
                                                        for k, v in by_lr.items()) +
                     f"); ‖w_t − w_0‖ {r_dw:.3f}; t {r_t:.3f}; pooled over η: Pearson "
                     f"{c['pearson']:.3f}, Spearman {c['spearman']:.3f}"))
  # 2. across the runs of one η at the final step
  f_e, f_dw = mean_of("final_e|ver_sg"), mean_of("final_delta_w|ver_sg")
  claim = C.Claim("unlearning error ranks the runs of one η by verification error (final step)",
                  sec, "mean over η of Spearman r(·, ver) across runs", float(a.strong_r),
                  "greater", "‖w_T − w_0‖ alone", "none", alpha)
  out.append(_compat(C.verdict(claim, f_e, control_value=f_dw, premise=math.isfinite(f_e),
                               premise_note="fewer than 3 runs per η"),
                     f"Spearman r across runs >= {a.strong_r:g}, above ‖w_T − w_0‖ alone",
                     f"e {f_e:.3f} (per η: " + ", ".join(f"{k}: {v['final_e|ver_sg']:.2f}"
                                                        for k, v in by_lr.items()) +
                     f"); ‖w_T − w_0‖ {f_dw:.3f}"))
  # 3. the SD loss, paired per (η, seed) against λ = 0
  rows = {r["lam"]: r for r in results["sd"]}
  for lam in sorted(rows):
    if lam == 0 or 0.0 not in rows:
      continue
    p = paired_final(records, pts, lam)
    for what, label in (("ver", "the verification error"), ("e", "the unlearning error")):
      d = p[what][:, 0] - p[what][:, 1]
      rel = float(np.mean(p[what][:, 0] / p[what][:, 1] - 1)) if len(d) else math.nan
      claim = C.Claim(f"the SD loss (λ = {lam:g}) lowers {label}", sec,
                      "mean relative change vs λ = 0 (final step)", 0.0, "less", "λ = 0",
                      str(a.paired_test), alpha)
      row = C.verdict(claim, rel, pairs=d, premise=len(d) > 0, premise_note="no common pairs")
      out.append(_compat(row, f"paired {a.paired_test} test over (η, seed), p <= {alpha:g}",
                         f"{100 * rel:+.0f} %; lower in {row['k']}/{row['n_pairs']} pairs"))
    cost = rows[0.0]["pretrain_test_acc"] - rows[lam]["pretrain_test_acc"]
    claim = C.Claim(f"the SD loss (λ = {lam:g}) costs little test accuracy", sec,
                    "pretrained test accuracy drop vs λ = 0", float(a.max_accuracy_cost),
                    "less", "λ = 0", "none", alpha)
    out.append(_compat(C.verdict(claim, cost), f"drop <= {100 * a.max_accuracy_cost:g} pp "
                       "(one pretrained model per λ: no paired test)",
                       f"{-100 * cost:+.1f} pp"))
  # 4. single-gradient unlearning against doing nothing (the control), paired per run
  sg = np.concatenate([r["steps_ver_sg"][:, -1] for r in records.values()])
  none = np.concatenate([r["steps_ver_none"][:, -1] for r in records.values()])
  rel = float(np.mean(sg / none - 1))
  claim = C.Claim("single-gradient unlearning lowers the verification error", "20-unroll.md §3",
                  "mean relative change vs doing nothing (final step)", 0.0, "less",
                  "doing nothing", str(a.paired_test), alpha)
  row = C.verdict(claim, rel, control_value=0.0, pairs=sg - none)
  out.append(_compat(row, f"paired {a.paired_test} test over runs, p <= {alpha:g}",
                     f"{100 * rel:+.0f} %; lower in {row['k']}/{row['n_pairs']} runs"))
  # 5. growth of the verification error
  g = results["growth"]
  for name, key, how in (("η", "lr", "final step, across runs, mean over λ"),
                         ("t", "t", "within each run, mean over runs"),
                         ("||w_t - w_0||", "delta_w", "every point")):
    v = g[key]
    claim = C.Claim(f"verification error grows with {name}", sec, f"Spearman ρ ({how})",
                    float(a.growth_rho), "greater", "none", "none", alpha)
    row = C.verdict(claim, math.nan if v is None else v, premise=v is not None,
                    premise_note="one η only")
    out.append(_compat(row, f"Spearman ρ > {a.growth_rho:g} ({how})",
                       "—" if v is None else f"ρ = {v:.3f}" + (
                           f" ({100 * g['t_positive_runs']:.0f} % of runs ρ > 0)"
                           if key == "t" else "")))
  return out


# ----------------------------------------------------------------------------------------------
# Report.


def _fmt_ms(d, scale=1.0, digits=3) -> str:
  return f"{scale * d['mean']:.{digits}g} ± {scale * d['std']:.{digits}g}"


def to_markdown(results: dict, meta: dict) -> str:
  L = [f"# Unrolling SGD: correlation study ({meta['dataset']}/{meta['model']})", ""]
  L += [f"{results['num_runs']} lockstep runs (λ × η × seed) × {results['steps']} steps = "
        f"{results['num_points']} (unlearning error, verification error) points; model "
        f"{meta['model']} ({meta['num_params']} params), B* = one batch of "
        f"{meta['batch_size']}, σ every {meta['sigma_every']} steps on "
        f"{meta['hessian_examples']} examples (σ = {meta['sigma_form']} of λ_max).", ""]
  L += ["## Headline claims (`20-unroll.md` §6)", "",
        "Thresholds and the test level come from `config.analysis` (set before the run); a claim "
        "whose control or baseline clears the threshold too is **uninformative**, never held. "
        "Per-η correlations pool the steps of a run, so their points are not independent: no "
        "p-value is given for them.", "", C.markdown(results["claims"]),
        "| claim | test | measured |", "|---|---|---|"]
  for c in results["claims"]:
    cells = (c["claim"], c["test_text"], c["value_text"])
    L.append("| " + " | ".join(str(x).replace("|", "\\|") for x in cells) + " |")
  L += ["", "## Correlations (every point; 95 % bootstrap intervals over runs)", "",
        "`ver_sg`: verification error of single-gradient unlearning w_t + n·η·g0 (the public "
        "code's); `ver_sg_momentum`: with the momentum impulse response as coefficient; "
        "`ver_none`: ||w_t − w'_t|| (no unlearning). `e`: σ at w_t; `e_rolling`: σ_avg; "
        "`e_ckpt`: checkpointed; `e_sqrt`: the public code's sqrt(λ_max) (points with λ_max < 0 "
        "dropped).", "", "| unlearning error | verification error | points | Pearson r | "
        "Spearman r | Pearson r of logs |", "|---|---|---|---|---|---|"]
  for key, c in results["correlations"].items():
    e, v = key.split("|")
    ci = lambda k: (f" [{c[k + '_ci'][0]:.2f}, {c[k + '_ci'][1]:.2f}]" if k + "_ci" in c else "")
    L.append(f"| {e} | {v} | {c['points']} | {c['pearson']:.3f}{ci('pearson')} | "
             f"{c['spearman']:.3f}{ci('spearman')} | {c['pearson_log']:.3f} |")
  L += ["", "## SD loss (final step, mean ± std over η and seeds)", "",
        "| λ | pretrained train / test acc % | fine-tuned test acc % | verification error "
        "(single gradient) | ‖w_T − w'_T‖ | unlearning error e | ‖w_T − w_0‖ | σ |",
        "|---|---|---|---|---|---|---|---|"]
  for r in results["sd"]:
    L.append(f"| {r['lam']:g} | {100 * r['pretrain_train_acc']:.1f} / "
             f"{100 * r['pretrain_test_acc']:.1f} | {_fmt_ms(r['test_acc'], 100)} | "
             f"{_fmt_ms(r['ver_sg'])} | {_fmt_ms(r['ver_none'])} | {_fmt_ms(r['e'])} | "
             f"{_fmt_ms(r['delta_w'])} | {_fmt_ms(r['sigma'])} |")
  L += ["", "## Single-gradient unlearning vs doing nothing (final step, mean ± std over seeds)",
        "", "| λ | η | ‖w_T − w'_T‖ (nothing) | single gradient (n·η) | single gradient "
        "(momentum-aware) | test acc % M / M' / unlearned |", "|---|---|---|---|---|---|"]
  for r in results["single_gradient"]:
    L.append(f"| {r['lam']:g} | {r['lr']:g} | {_fmt_ms(r['ver_none'])} | "
             f"{_fmt_ms(r['ver_sg'])} | {_fmt_ms(r['ver_sg_momentum'])} | "
             f"{100 * r['test_acc_m']['mean']:.1f} / {100 * r['test_acc_retrain']['mean']:.1f} / "
             f"{100 * r['test_acc_sg']['mean']:.1f} |")
  g = results["growth"]
  rho_lr = "—" if g["lr"] is None else f"{g['lr']:.3f}"
  L += ["", "## Growth of the verification error", "",
        f"Spearman ρ with η (final step, across runs, mean over λ): {rho_lr}; with t (within "
        "runs, mean): "
        f"{g['t']:.3f} ({100 * g['t_positive_runs']:.0f} % of runs positive); with ‖w_t − w_0‖ "
        f"(every point): {g['delta_w']:.3f}.", ""]
  if meta.get("plots"):
    L += ["## Plots", "", "![scatter](plots/scatter.png)", "", "![curves](plots/curves.png)", "",
          "![sd](plots/sd.png)", ""]
  L += [f"Wall time: pretraining {meta['pretrain_s']:.0f} s, unrolls {meta['unroll_s']:.0f} s.", ""]
  return "\n".join(L)


def _figure(**kw):
  from matplotlib.figure import Figure
  return Figure(**kw)


def write_plots(plots: Path, pts: Mapping[str, np.ndarray], records, config) -> None:
  plots.mkdir(parents=True, exist_ok=True)
  lrs = sorted(np.unique(pts["lr"]))
  lams = sorted(np.unique(pts["lam"]))
  markers = "osd^v<>P*X"
  colors = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
  fig = _figure(figsize=(6.5, 5))
  ax = fig.add_subplot(1, 1, 1)
  for i, lr in enumerate(lrs):
    for j, lam in enumerate(lams):
      m = (pts["lr"] == lr) & (pts["lam"] == lam) & (pts["e"] > 0) & (pts["ver_sg"] > 0)
      ax.scatter(pts["e"][m], pts["ver_sg"][m], s=6, alpha=0.5, color=colors[i % len(colors)],
                 marker=markers[j % len(markers)], label=f"η={lr:g}, λ={lam:g}")
  ax.set_xscale("log")
  ax.set_yscale("log")
  ax.set_xlabel("unlearning error e = η²/2 · t · ‖w_t − w_0‖ · σ")
  ax.set_ylabel("verification error (single gradient)")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=5.5, ncol=3, markerscale=2)
  fig.savefig(plots / "scatter.png", dpi=110, bbox_inches="tight")

  fig = _figure(figsize=(11, 7), layout="constrained")
  lam0 = min(records)
  r = records[lam0]
  steps = {k[6:]: v for k, v in r.items() if k.startswith("steps_")}
  s = config.sweep
  e = U.unlearning_errors(steps, r["chunks_eigenvalue"], every=int(s.sigma_every),
                          checkpoint_every=int(s.checkpoint_every), sigma_form=s.sigma_form)
  t = e["t"]
  panels = [("‖w_t − w_0‖", steps["delta_w"]), ("σ (at w_t)", e["sigma"]),
            ("unlearning error e (rolling dashed)", e["e"]),
            ("verification error: single gradient (solid), momentum-aware (dotted), nothing "
             "(dashed)", steps["ver_sg"])]
  for p, (title, val) in enumerate(panels):
    ax = fig.add_subplot(2, 2, p + 1)
    for i, lr in enumerate(lrs):
      m = np.isclose(r["lr"], lr)
      ax.plot(t, val[m].mean(0), color=colors[i % len(colors)], label=f"η={lr:g}")
      if p == 2:
        ax.plot(t, e["e_rolling"][m].mean(0), color=colors[i % len(colors)], ls="--")
      if p == 3:
        ax.plot(t, steps["ver_none"][m].mean(0), color=colors[i % len(colors)], ls="--")
        ax.plot(t, steps["ver_sg_momentum"][m].mean(0), color=colors[i % len(colors)], ls=":")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("step t")
    if p >= 2:
      ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  fig.suptitle(f"per-step curves at λ = {lam0:g} (mean over seeds)", fontsize=10)
  fig.savefig(plots / "curves.png", dpi=110, bbox_inches="tight")

  fig = _figure(figsize=(10, 3.6), layout="constrained")
  ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
  for i, lr in enumerate(lrs):
    ver, acc = [], []
    for lam in lams:
      rr = records[lam]
      m = np.isclose(rr["lr"], lr)
      ver.append(rr["steps_ver_sg"][m, -1].mean())
      acc.append(100 * rr["test_acc_m"][m].mean())
    ax1.plot(range(len(lams)), ver, "o-", color=colors[i % len(colors)], label=f"η={lr:g}")
    ax2.plot(range(len(lams)), acc, "o-", color=colors[i % len(colors)], label=f"η={lr:g}")
  for ax, title in ((ax1, "final verification error (single gradient)"),
                    (ax2, "test accuracy of M after fine-tuning (%)")):
    ax.set_xticks(range(len(lams)), [f"{v:g}" for v in lams])
    ax.set_xlabel("SD-loss λ")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  ax1.set_yscale("log")
  fig.savefig(plots / "sd.png", dpi=110, bbox_inches="tight")


def points_csv(pts: Mapping[str, np.ndarray]) -> str:
  cols = ["lam", "lr", "seed", "t", "delta_w", "sigma", "e", "e_rolling", "e_ckpt", "ver_sg",
          "ver_none", "ver_sg_momentum"]
  lines = [",".join(cols)]
  for i in range(len(pts["t"])):
    lines.append(",".join(f"{pts[c][i]:.6g}" for c in cols))
  return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------
# The whole experiment.


def run_unroll_sgd(config, workdir) -> dict:
  """Pretrain (or reuse) per λ, unroll (or reuse) per λ, then write the report and summary."""
  t0 = time.perf_counter()
  dataset, model = plan(config)                  # every config error before any write
  layout = Workdir(workdir)
  check_workdir(config, layout)
  layout.root.mkdir(parents=True, exist_ok=True)
  io.atomic_write_json(layout.config, config)
  lams = [float(v) for v in config.sweep.lambdas]
  pretrained, records, walls = {}, {}, {"pretrain_s": 0.0, "unroll_s": 0.0}
  bar = tqdm(total=len(lams), desc="unroll λ", disable=not config.progress, leave=False)
  for lam in lams:
    state, pretrained[lam] = pretrain(config, dataset, model, layout.root, lam)
    walls["pretrain_s"] += pretrained[lam]["wall_s"]
    path = layout.root / "unroll" / f"{_tag(lam)}.npz"
    if path.exists():
      try:
        with np.load(path) as f:
          records[lam] = {k: f[k] for k in f.files}
      except Exception as e:  # noqa: BLE001 - a damaged or half-written file
        raise WorkdirError(f"{path} is corrupted ({type(e).__name__}); delete it and rerun "
                           "with the same --workdir") from e
    else:
      t1 = time.perf_counter()
      rec = sweep_lambda(config, dataset, model, state, lam)
      rec["wall_s"] = np.asarray(time.perf_counter() - t1)
      path.parent.mkdir(parents=True, exist_ok=True)
      io.atomic_savez(path, **rec)
      records[lam] = rec
    walls["unroll_s"] += float(records[lam]["wall_s"])
    bar.update(1)
  bar.close()
  results = analyze(records, pretrained, config)
  meta = {"dataset": dataset.name, "model": model.name,
          "num_params": count_params(state.params), "batch_size": config.sweep.batch_size,
          "sigma_every": config.sweep.sigma_every, "hessian_examples": config.sweep.hessian_examples,
          "sigma_form": config.sweep.sigma_form, "plots": bool(config.analysis.plots), **walls}
  results["meta"] = meta
  results["pretrained"] = {f"{k:g}": v for k, v in pretrained.items()}
  pts = point_table(records, config)
  io.atomic_write_json(layout.results_json, results)
  io.atomic_write_text(layout.results_csv, points_csv(pts))
  if config.analysis.plots:
    write_plots(layout.plots, pts, records, config)
  io.atomic_write_text(layout.report, to_markdown(results, meta))
  summary = {"dataset": dataset.name, "model": model.name, "runs": results["num_runs"],
             "steps": results["steps"], "claims": results["claims"],
             "correlation": results["correlations"]["e|ver_sg"], "sd": results["sd"],
             "wall_s": time.perf_counter() - t0}
  io.atomic_write_json(layout.summary, summary)
  return summary


def one_line(summary: dict, workdir) -> str:
  """The one-line summary `experiments.unroll_sgd` prints at the end."""
  c = summary["correlation"]
  n = C.count(summary["claims"])
  sd = [r for r in summary["sd"] if r["lam"] > 0]
  base = next((r for r in summary["sd"] if r["lam"] == 0), None)
  sd_part = ""
  if sd and base:
    r = sd[-1]
    sd_part = (f" | SD λ={r['lam']:g}: ver {100 * (r['ver_sg']['mean'] / base['ver_sg']['mean'] - 1):+.0f} %, "
               f"test acc {100 * (r['pretrain_test_acc'] - base['pretrain_test_acc']):+.1f} pp")
  return (f"unroll_sgd {summary['dataset']}/{summary['model']} | {summary['runs']} runs x "
          f"{summary['steps']} steps | r(e, ver) Pearson {c['pearson']:.2f} Spearman "
          f"{c['spearman']:.2f}{sd_part} | {n['held']}/{len(summary['claims'])} claims held "
          f"({n['uninformative']} uninformative, {n['not held']} not held) | "
          f"{summary['wall_s']:.0f}s -> {Path(workdir) / 'report.md'}")
