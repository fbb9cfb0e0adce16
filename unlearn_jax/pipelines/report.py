"""The unlearning report, recomputed from the logits saved in a workdir (no model is run).

  evaluate_workdir(workdir) -> summary

Reads config.json, eval/<group>.npz (logits and labels of the forget/retain/validation/test
splits, `experiment.save_logits`), eval/references.json (cost of `original` and `oracle`)
and methods/<name>/result.json, and writes
  results.json   every number: per seed, mean ± std, Δ to the oracle, FQ, KLOM, MIA, ToW, cost
  results.csv    one row per model group (means and stds)
  report.md      the tables a person reads, with the plots
  plots/*.png    forget vs test accuracy, MIA per method, confidence histograms
  summary.json   the headline numbers (same `groups/<g>/splits` shape as `experiments.train`)

Definitions (`50-metrics.md`): accuracies/losses per split and seed; Δ_x = mean over oracle seeds
of x − the method's x, then mean ± std over the method's seeds (smaller |Δ| is better); ToW of
each seed against the oracle's mean accuracies; MIA per seed (`mia_loss_lr`: forget vs test
losses; `mia_svc_*`: SVC trained on retain vs test, efficacy on forget); forgetting quality of
the method's N seeds against the first N oracle seeds, beside the oracle-vs-oracle ceiling
(oracle seeds N..2N-1 against 0..N-1: `config.oracle_seeds` gives the oracle group 2N seeds,
N >= 3 for a score bin); KLOM (`metrics.klom`, Georgiev et al. 2024) of the same models: per
example KL(unlearned ‖ oracle) of the margin histograms, its P95 on the forget, retain and
validation examples, beside the same oracle-vs-oracle ceiling; cost relative to the oracle's
(retraining) wall time and example-gradient count.
Seeds that diverged (non-finite parameters) are left out of every number and counted.
"""

from __future__ import annotations

import csv
import io as _io
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from unlearn_jax import io, metrics
from unlearn_jax.errors import WorkdirError
from unlearn_jax.methods import METHODS
from unlearn_jax.metrics.tow import TOW_SPLITS
from unlearn_jax.pipelines.experiment import load_logits, read_workdir_json
from unlearn_jax.pipelines.layout import Workdir

SPLITS = ("forget", "retain", "validation", "test")
REFERENCES = ("original", "oracle")
SVC_FEATURES = ("confidence", "entropy", "m_entropy", "prob", "correctness")
EVAL_DEFAULTS = dict(mia_splits=5, mia_seed=0, svc_features=SVC_FEATURES, fq=True, plots=True,
                     hist_examples=3, workers=0)
# Metrics whose Δ to the oracle is reported.
DELTA_METRICS = tuple(f"{s}_{m}" for s in SPLITS for m in ("accuracy", "loss"))
# Smallest number of models per sample with a forget-score bin (ceil(ln(M - 1)) >= 1).
MIN_FQ_MODELS = 3


# ----------------------------------------------------------------------------------------------
# Numbers.


def _softmax(logits: np.ndarray) -> np.ndarray:
  z = np.asarray(logits, np.float64)
  z = z - z.max(axis=-1, keepdims=True)
  e = np.exp(z)
  return e / e.sum(axis=-1, keepdims=True)


def model_logits(logits: Mapping[str, np.ndarray], i: int) -> dict[str, np.ndarray]:
  """Model `i`'s `<split>_logits [n, C]` and the `<split>_labels [n]`."""
  return {k: v[i] if k.endswith("_logits") else v for k, v in logits.items()}


def seed_metrics(logits: Mapping[str, np.ndarray], ev: Mapping[str, Any]) -> dict:
  """Every per-model number of one model: accuracy/loss per split, MIA scores.

  Args:
    logits: one model's `<split>_logits [n, C]` and `<split>_labels [n]` (`model_logits`).
    ev: the `eval` config (mia_splits, mia_seed, svc_features).
  """
  out = {}
  for s in SPLITS:
    for k, v in metrics.split_metrics(logits[f"{s}_logits"], logits[f"{s}_labels"]).items():
      if k != "error":
        out[f"{s}_{k}"] = v
  f_loss = metrics.softmax_cross_entropy_per_example(logits["forget_logits"],
                                                     logits["forget_labels"])
  t_loss = metrics.softmax_cross_entropy_per_example(logits["test_logits"],
                                                     logits["test_labels"])
  out["mia_loss_lr"] = metrics.mia_loss_lr(f_loss, t_loss, n_splits=int(ev["mia_splits"]),
                                           seed=int(ev["mia_seed"]))
  probs = {s: _softmax(logits[f"{s}_logits"]) for s in ("retain", "test", "forget")}
  for feature in ev["svc_features"]:
    out[f"mia_svc_{feature}"] = metrics.mia_svc(
        probs["retain"], logits["retain_labels"], probs["test"], logits["test_labels"],
        probs["forget"], logits["forget_labels"], feature=feature, seed=int(ev["mia_seed"]))
  return out


def all_seed_metrics(tasks: Sequence[Mapping[str, np.ndarray]], ev: Mapping[str, Any]
                     ) -> list[dict]:
  """`seed_metrics` of many models, in worker processes when `ev["workers"]` allows.

  The SVC attacks dominate the cost and run single-threaded, so with several cores the models
  are spread over `workers` processes (0 = one per core, at most 8); results do not depend on it.
  """
  workers = int(ev.get("workers", 0)) or min(8, os.cpu_count() or 1)
  workers = min(workers, len(tasks))
  if workers <= 1:
    return [seed_metrics(t, ev) for t in tasks]
  from joblib import Parallel, delayed  # a scikit-learn dependency
  return Parallel(n_jobs=workers, backend="loky")(delayed(seed_metrics)(t, dict(ev))
                                                  for t in tasks)


def _ms(values: Sequence[float | None]) -> tuple[float, float]:
  return metrics.mean_std([math.nan if v is None else v for v in values])


def forget_confidences(logits: Mapping[str, np.ndarray], seeds_ok: np.ndarray) -> np.ndarray:
  """`[M, n]` logit-scaled confidences of the forget set for the kept seeds."""
  y = logits["forget_labels"]
  return np.stack([metrics.logit_scaled_confidence(logits["forget_logits"][i], y)
                   for i in np.flatnonzero(seeds_ok)]) if seeds_ok.any() else np.zeros(
                       (0, len(y)))


def evaluate_group(seed_results: Sequence[dict | None]) -> dict:
  """Per-seed metrics (None for seeds left out) and their mean ± std over the kept seeds."""
  n = len(seed_results)
  per_seed: dict[str, list] = {}
  for i, m in enumerate(seed_results):
    for k, v in (m or {}).items():
      per_seed.setdefault(k, [None] * n)[i] = v
  entry = {"per_seed": per_seed, "mean": {}, "std": {}}
  for k, vals in per_seed.items():
    entry["mean"][k], entry["std"][k] = _ms(vals)
  return entry


def compare_to_oracle(entry: dict, oracle: dict) -> dict:
  """Add Δ (oracle mean − value, per seed, then mean ± std) and ToW per seed to `entry`."""
  per_seed, om = entry["per_seed"], oracle["mean"]
  entry["delta"] = {}
  for k in DELTA_METRICS:
    d = [None if v is None else om[k] - v for v in per_seed[k]]
    mean, std = _ms(d)
    entry["delta"][k] = {"mean": mean, "std": std, "per_seed": d}
  oracle_acc = {s: om[f"{s}_accuracy"] for s in TOW_SPLITS}
  tow = [None if v is None else metrics.tug_of_war(
      {s: per_seed[f"{s}_accuracy"][i] for s in TOW_SPLITS}, oracle_acc)
         for i, v in enumerate(per_seed["forget_accuracy"])]
  per_seed["tow"] = tow
  entry["mean"]["tow"], entry["std"]["tow"] = _ms(tow)
  return entry


def _fq(conf: np.ndarray, oracle_conf: np.ndarray, entry: dict, oracle: dict) -> dict:
  """Forgetting quality of a group's kept seeds against the oracle's first kept seeds.

  `oracle_conf` is already cut to the reference models (`fq_reference`); the accuracy ratios use
  every kept oracle seed.
  """
  m = min(conf.shape[0], oracle_conf.shape[0])
  if m < 2 or metrics.num_score_bins(m) == 0:
    return {"score": None, "note": f"needs >= 3 seeds (M={m} leaves no score bin)"}
  acc = lambda e, s: [v for v in e["per_seed"][f"{s}_accuracy"] if v is not None]
  r = metrics.forgetting_quality(
      conf, oracle_conf, retain_acc_unlearned=acc(entry, "retain"),
      retain_acc_retrained=acc(oracle, "retain"), test_acc_unlearned=acc(entry, "test"),
      test_acc_retrained=acc(oracle, "test"))
  return {**{k: r[k] for k in ("score", "forget_score", "retain_ratio", "test_ratio",
                               "mean_eps", "num_models", "num_bins")},
          "eps_hist": eps_histogram(r["eps"])}


# Bin edges of the per-example ε histograms: the score's half-unit bins up to 8, then the cap.
EPS_EDGES = tuple(np.arange(0.0, 8.5, 0.5)) + (metrics.EPSILON_CAP + 1.0,)


def eps_histogram(eps) -> dict:
  """Counts of per-example ε in `EPS_EDGES` bins (the last bin holds ε >= 8, the cap at 50)."""
  counts, _ = np.histogram(np.minimum(np.asarray(eps, np.float64), metrics.EPSILON_CAP),
                           bins=np.asarray(EPS_EDGES))
  return {"edges": list(EPS_EDGES), "counts": counts.tolist()}


def fq_reference(num_seeds: int, num_oracle: int) -> tuple[int, int]:
  """(M_ref, M_ceil): methods are scored against the first M_ref kept oracle models; the ceiling
  scores the next M_ceil oracle models against the first M_ceil (disjoint groups)."""
  ref = min(num_seeds, num_oracle)
  return ref, min(max(num_seeds, MIN_FQ_MODELS), num_oracle // 2)


def ceiling_groups(num_oracle: int, num_seeds: int, num_diverged: int = 0
                   ) -> tuple[int | None, str]:
  """(M, note) of the oracle-vs-oracle ceilings (FQ and KLOM): oracle models [M, 2M) play the
  unlearned models against oracle models [0, M), the models the methods are scored against, with
  M = the methods' seeds when the oracle group has at least twice as many kept models
  (`config.oracle_seeds`), else half the kept oracle models; M is None (the note says why) when
  that leaves fewer than `MIN_FQ_MODELS` models per group."""
  _, m = fq_reference(num_seeds, num_oracle)
  want = 2 * max(num_seeds, MIN_FQ_MODELS)
  left_out = f", {num_diverged} diverged oracle seed(s) left out" if num_diverged else ""
  if m < MIN_FQ_MODELS:
    return None, (f"needs >= {2 * MIN_FQ_MODELS} oracle seeds (have {num_oracle}{left_out}): "
                  f"two disjoint groups of >= {MIN_FQ_MODELS} models; oracle_seeds={want} in "
                  "the config argument matches the methods' seeds")
  note = f"oracle models {m}..{2 * m - 1} vs 0..{m - 1}"
  if m != num_seeds:
    note += (f"; M = {m}, not the methods' {num_seeds} (have {num_oracle} oracle "
             f"seeds{left_out}; oracle_seeds={want} in the config argument matches them)")
  return m, note


def _ceiling(oracle_conf: np.ndarray, num_seeds: int, num_diverged: int = 0) -> dict:
  """Oracle-vs-oracle forgetting quality: the attainable score at the methods' number of seeds
  (oracle models [M, 2M) against [0, M), `ceiling_groups`)."""
  m, note = ceiling_groups(oracle_conf.shape[0], num_seeds, num_diverged)
  if m is None:
    return {"score": None, "note": note}
  r = metrics.oracle_ceiling(oracle_conf, split=(range(m, 2 * m), range(m)))
  return {"score": r["score"], "forget_score": r["forget_score"], "mean_eps": r["mean_eps"],
          "num_models": r["num_models"], "num_bins": r["num_bins"], "note": note,
          "eps_hist": eps_histogram(r["eps"])}


# KLOM (`metrics.klom`): the splits it is reported on (the validation split is held out of every
# model's training, as EasyDUB's "val"; the test split is not used) and their report labels.
KLOM_SPLITS = ("forget", "retain", "validation")
KLOM_LABELS = {"forget": "forget", "retain": "retain", "validation": "val"}
KLOM_Q = 95


def klom_margins(logits: Mapping[str, np.ndarray], seeds_ok: np.ndarray) -> np.ndarray:
  """`[M, n_forget + n_retain + n_validation]` margins (`metrics.margins`) of the kept seeds, the
  `KLOM_SPLITS` side by side (`klom_split_index` gives each split's columns)."""
  keep = np.flatnonzero(seeds_ok)
  return np.concatenate([metrics.margins(logits[f"{s}_logits"][keep], logits[f"{s}_labels"])
                         for s in KLOM_SPLITS], axis=1)


def klom_split_index(logits: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """The columns of each `KLOM_SPLITS` split in `klom_margins`."""
  out, start = {}, 0
  for s in KLOM_SPLITS:
    n = int(logits[f"{s}_labels"].shape[0])
    out[s] = np.arange(start, start + n)
    start += n
  return out


def _klom(margins: np.ndarray, oracle_margins: np.ndarray, splits: Mapping[str, np.ndarray]
          ) -> dict:
  """P95 KLOM per split of a group's kept seeds against the reference oracle models (the first
  `fq_reference` kept ones, as for FQ)."""
  if margins.shape[0] == 0 or oracle_margins.shape[0] == 0:
    return {"p95": None, "note": "no kept seed" if margins.shape[0] == 0 else
            "no kept oracle seed"}
  per_example = metrics.klom(margins, oracle_margins)
  return {"p95": metrics.klom_summary(per_example, splits, q=KLOM_Q),
          "num_models": int(margins.shape[0]), "num_oracle": int(oracle_margins.shape[0])}


def _klom_ceiling(oracle_margins: np.ndarray, splits: Mapping[str, np.ndarray], num_seeds: int,
                  num_diverged: int = 0) -> dict:
  """Oracle-vs-oracle KLOM, the small-sample floor: oracle models [M, 2M) against [0, M), the
  models of the FQ ceiling (`ceiling_groups`)."""
  m, note = ceiling_groups(oracle_margins.shape[0], num_seeds, num_diverged)
  if m is None:
    return {"p95": None, "note": note}
  per_example = metrics.klom_ceiling(oracle_margins[m:2 * m], oracle_margins[:m])
  return {"p95": metrics.klom_summary(per_example, splits, q=KLOM_Q), "num_models": m,
          "num_oracle": m, "note": note}


def _relative(cost: dict | None, oracle_cost: dict | None, num_models: int,
              num_oracle: int) -> dict:
  """Cost relative to retraining, per model: wall time is that of a whole group, so it is divided
  by the group's number of models (the oracle group may have more seeds than a method);
  example gradients and epochs are per model already. Approximate for wall time: it assumes time
  grows linearly with the number of models, true for CPU's unrolled seeds, not for vmapped seeds
  on an accelerator (there compare groups of equal size)."""
  out = {}
  for k in ("wall_s", "example_gradients", "epochs"):
    try:
      c, o = cost[k], oracle_cost[k]
      if k == "wall_s":
        c, o = c / num_models, o / num_oracle
      out[k] = metrics.cost_relative(c, o)
    except (TypeError, KeyError, ValueError):
      out[k] = None
  return out


def _status(record: dict | None, diverged: np.ndarray) -> str:
  if record is None:
    return "missing"
  if record.get("status") != "done":
    return "failed"
  if diverged.all():
    return "diverged"
  if diverged.any():
    return f"{int(diverged.sum())}/{len(diverged)} diverged"
  return "ok"


def unchanged_seeds(logits: Mapping[str, np.ndarray], original: Mapping[str, np.ndarray],
                    atol: float = 1e-6) -> np.ndarray:
  """Per seed: the model's logits equal the original model's on every split (within `atol`),
  i.e. the method returned the original model (ssd selecting nothing, a zero learning rate)."""
  same = None
  for s in SPLITS:
    a, b = logits[f"{s}_logits"], original[f"{s}_logits"]
    if a.shape != b.shape:
      return np.zeros(a.shape[0], bool)
    eq = (np.abs(a.astype(np.float64) - b) <= atol).reshape(a.shape[0], -1).all(1)
    same = eq if same is None else same & eq
  return same


def _diverged_from_logits(logits: Mapping[str, np.ndarray]) -> np.ndarray:
  bad = None
  for s in SPLITS:
    b = ~np.isfinite(logits[f"{s}_logits"]).reshape(logits[f"{s}_logits"].shape[0], -1).all(1)
    bad = b if bad is None else bad | b
  return bad


def recipe_of(config: Mapping[str, Any], name: str, used: Mapping[str, Any] | None) -> dict:
  """`recipe`: the named recipe the method's hyperparameters came from (config `recipe`, `fast`
  for workdirs recorded before recipes existed); `recipe_changes`: the fields whose value `used`
  differs from the recipe's own (`config.recipe_values`), i.e. the command-line overrides. A
  user method (not built in) has no recipe: `user`, its changes counted from its DEFAULTS."""
  base = (config.get("recipe_values") or {}).get(name) or {}
  changes = {k: v for k, v in (used or {}).items()
             if k in base and base[k] is not None and _differs(v, base[k])}
  recipe = "user" if name not in METHODS else config.get("recipe") or "fast"
  return {"recipe": recipe, "recipe_changes": changes}


def _differs(a, b) -> bool:
  if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
    return list(a) != list(b)
  return a != b


def recipe_cell(g: dict) -> str:
  """`official` or `official; changed: learning_rate=0.05`."""
  changes = g.get("recipe_changes") or {}
  text = g.get("recipe", "fast")
  return text + ("; changed: " + ", ".join(f"{k}={v}" for k, v in changes.items())
                 if changes else "")


def evaluate_workdir(workdir, *, run_wall_s: float | None = None) -> dict:
  """Compute every metric from the saved logits and write the report files.

  Args:
    workdir: a workdir of `experiments.unlearn` (config.json and eval/ must exist).
    run_wall_s: wall time of the run that made it (kept from the previous summary if None).

  Returns:
    The summary (also written to `summary.json`); the full results are in `results.json`.
  """
  layout = Workdir(workdir)
  workdir = layout.root
  check_evaluable(layout)
  config = read_workdir_json(layout.config, "the recorded config")
  if run_wall_s is None and layout.summary.exists():  # read before anything is written
    run_wall_s = read_workdir_json(layout.summary, "the last summary").get("wall_s")
  ev = {**EVAL_DEFAULTS, **(config.get("eval") or {})}
  methods = list(config.get("methods") or [])
  seeds = list(config["seeds"])
  group_seeds = {"oracle": list(config.get("oracle_seeds") or seeds)}
  ref_costs = (read_workdir_json(layout.references, "reference costs")
               if layout.references.exists() else {})

  # Pass 1: what each group is (status, cost, logits of its kept seeds).
  loaded: dict[str, tuple[dict, dict | None, np.ndarray]] = {}
  for name in (*REFERENCES, *methods):
    is_ref = name in REFERENCES
    record = ({"status": "done", "cost": ref_costs.get(name)} if is_ref else None)
    if not is_ref and layout.method_result(name).exists():
      record = read_workdir_json(layout.method_result(name), f"method {name}'s result")
    logits = None
    if record is not None and record.get("status") == "done" and layout.logits(name).exists():
      logits = load_logits(layout.logits(name))
    if record is not None and record.get("status") == "done" and logits is None:
      record = {**record, "status": "failed", "error": f"{layout.logits(name)} is missing"}
    diverged = np.zeros(len(group_seeds.get(name, seeds)), bool)
    if logits is not None:
      n = logits["forget_logits"].shape[0]
      diverged = np.asarray(record.get("diverged") or np.zeros(n, bool), bool)
      diverged = diverged | _diverged_from_logits(logits)
    loaded[name] = (record, logits, diverged)

  # Pass 2: per-model metrics of every kept seed of every group (the expensive part).
  tasks = [(name, i) for name, (_, logits, div) in loaded.items() if logits is not None
           for i in np.flatnonzero(~div)]
  values = all_seed_metrics([model_logits(loaded[name][1], i) for name, i in tasks], ev)
  seed_results = {name: [None] * len(loaded[name][2]) for name in loaded}
  for (name, i), v in zip(tasks, values):
    seed_results[name][i] = v

  # Pass 3: aggregate, compare with the oracle.
  oracle_logits = loaded["oracle"][1]
  oracle_ok = ~loaded["oracle"][2]
  oracle = evaluate_group(seed_results["oracle"])
  oracle_conf = forget_confidences(oracle_logits, oracle_ok)
  ref_conf = oracle_conf[:fq_reference(len(seeds), oracle_conf.shape[0])[0]]
  ceiling = (_ceiling(oracle_conf, len(seeds), int((~oracle_ok).sum())) if ev["fq"]
             else {"score": None, "note": "disabled"})
  klom_splits = klom_split_index(oracle_logits)
  oracle_margins = klom_margins(oracle_logits, oracle_ok)
  ref_margins = oracle_margins[:fq_reference(len(seeds), oracle_margins.shape[0])[0]]
  klom_ceiling = _klom_ceiling(oracle_margins, klom_splits, len(seeds), int((~oracle_ok).sum()))
  groups: dict[str, dict] = {}
  confs: dict[str, np.ndarray] = {}
  oracle_cost = ref_costs.get("oracle")
  for name, (record, logits, diverged) in loaded.items():
    status = _status(record, diverged)
    unchanged = (name not in REFERENCES and logits is not None and (~diverged).any()
                 and bool(unchanged_seeds(logits, loaded["original"][1])[~diverged].all()))
    entry = {"group": name, "kind": "reference" if name in REFERENCES else "method",
             "status": status, "unchanged": unchanged, "seeds": group_seeds.get(name, seeds),
             "diverged": diverged.tolist(),
             "error": (record or {}).get("error"),
             "config": (record or {}).get("config"),
             "cost": (record or {}).get("cost"),
             "cost_relative": _relative((record or {}).get("cost"), oracle_cost,
                                        len(diverged), len(loaded["oracle"][2]))}
    if name not in REFERENCES:
      entry.update(recipe_of(config, name, (record or {}).get("config")))
    if name == "oracle":
      entry.update(compare_to_oracle(oracle, oracle))
      entry["fq"] = {**ceiling, "note": "oracle vs oracle ceiling: " + ceiling.get("note", "")}
      entry["klom"] = {**klom_ceiling, "note": "oracle vs oracle ceiling: " + klom_ceiling["note"]}
    elif logits is not None and (~diverged).any():
      entry.update(compare_to_oracle(evaluate_group(seed_results[name]), oracle))
      confs[name] = forget_confidences(logits, ~diverged)
      entry["fq"] = (_fq(confs[name], ref_conf, entry, oracle) if ev["fq"]
                     else {"score": None, "note": "disabled"})
      entry["klom"] = _klom(klom_margins(logits, ~diverged), ref_margins, klom_splits)
    groups[name] = entry

  results = {"workdir": str(workdir), "dataset": config["data"]["name"],
             "model": config["model"]["name"], "seeds": seeds,
             "oracle_seeds": group_seeds["oracle"], "methods": methods,
             "retain_size": int(oracle_logits["retain_labels"].shape[0]),
             "forget": {"kind": config["forget"]["kind"],
                        "size": int(oracle_logits["forget_labels"].shape[0])},
             "eval": ev, "oracle_ceiling": ceiling, "klom_ceiling": klom_ceiling,
             "order": list(groups), "groups": groups}
  results["power"] = benchmark_power(groups["original"], groups["oracle"], ceiling,
                                     klom_ceiling)
  add_shadow_results(results, config, layout)
  plots = write_plots(layout, results, confs, oracle_conf, ev) if ev["plots"] else {}
  results["plots"] = plots
  io.atomic_write_json(layout.results_json, results)
  io.atomic_write_text(layout.results_csv, to_csv(results))
  io.atomic_write_text(layout.report, to_markdown(results))
  summary = make_summary(layout, results, run_wall_s)
  io.atomic_write_json(layout.summary, summary)
  return summary


SHADOW_SIDES = {"original": "original (no unlearning)", "oracle": "retrain (control)"}


def add_shadow_results(results: dict, config: Mapping[str, Any], layout: Workdir) -> None:
  """With `config.shadows.num` > 0 and its shadow models saved (`pipelines.shadows`): U-LiRA
  and shadow KLOM of every method, recomputed from the saved logits, in `results["shadows"]`
  and per group (`original` = the original shadow models, `oracle` = the retrain control)."""
  if not ((config.get("shadows") or {}).get("num")):
    return
  from unlearn_jax.pipelines import shadows  # noqa: PLC0415 (only with shadow models)
  root = layout.root / "shadows"
  if not (root / "design.npz").exists():
    results["shadows"] = {"note": f"config.shadows.num is set but {root} holds no shadow models "
                                  "yet (the run stopped before them)"}
    return
  summary = shadows.shadow_results(config, root)
  results["shadows"] = summary
  orig, ctrl = (summary["ulira"][SHADOW_SIDES[k]]["accuracy"] for k in ("original", "oracle"))
  if results.get("power") is not None:
    results["power"]["ulira"] = {"original": orig["mean"], "control": ctrl["mean"],
                                 "control_std": ctrl["std"],
                                 "z": (orig["mean"] - ctrl["mean"]) / ctrl["std"]
                                 if ctrl["std"] > 0 else float("inf")}
  for name, g in results["groups"].items():
    row = summary["ulira"].get(SHADOW_SIDES.get(name, name))
    if row is not None:
      g["shadow"] = {"ulira_accuracy": row["accuracy"], "ulira_auc": row["auc"],
                     "ulira_tpr@0.01": row["tpr@0.01"], "klom": row["klom"]}


def check_evaluable(layout: Workdir) -> None:
  """The workdir holds a finished `experiments.unlearn` run's config and reference logits (a
  one-line `WorkdirError` otherwise; nothing is written)."""
  if not layout.root.is_dir():
    raise WorkdirError(f"--workdir {layout.root} is not a folder of an experiments.unlearn run; "
                       "pass the --workdir of a finished run")
  missing = [p for p in (layout.config, *(layout.logits(g) for g in REFERENCES))
             if not p.exists()]
  if missing:
    raise WorkdirError(f"{missing[0]} is missing, so {layout.root} holds no finished "
                       "experiments.unlearn run; run python -m experiments.unlearn "
                       f"--workdir={layout.root} first")


# ----------------------------------------------------------------------------------------------
# Benchmark power: can this setting tell unlearning from doing nothing?

# (name, key in the groups' means, scale for display, unit)
POWER_METRICS = (("forget accuracy", "forget_accuracy", 100.0, "pp"),
                 ("MIA loss-LR", "mia_loss_lr", 100.0, "pp"),
                 ("MIA-SVC confidence", "mia_svc_confidence", 100.0, "pp"),
                 ("ToW", "tow", 1.0, ""))
POWER_Z = 2.0      # original-vs-oracle distance must exceed this many oracle seed std
POWER_FQ = 0.5     # and the original's FQ must be at most this fraction of the ceiling


def benchmark_power(original: dict, oracle: dict, ceiling: dict,
                    klom_ceiling: dict | None = None) -> dict:
  """How far the original model (which unlearned nothing) is from the retrain oracle, beside the
  oracle-vs-oracle spread, for each headline metric.

  distance = |mean over original seeds − mean over oracle seeds|; spread = standard deviation over
  the oracle seeds (how far one retrained model falls from another); z = distance / spread. For
  FQ: the original's score beside the oracle-vs-oracle ceiling. The setting can rank methods when
  forget-accuracy and MIA loss-LR distances both exceed `POWER_Z` spreads (over >= 3 oracle
  seeds) and the original's FQ is at most `POWER_FQ` × the ceiling (both must exist): then doing
  nothing is measurably not unlearning, and a method can be placed between the two.

  KLOM: the original's forget P95 KLOM beside the oracle-vs-oracle one (`klom_ceiling`) and their
  ratio (lower KLOM is better, so a ratio well above 1 leaves room to rank methods); shown, not
  part of the verdict.
  """
  rows, failed = [], []
  for label, key, scale, unit in POWER_METRICS:
    if "mean" not in original or key not in original["mean"] or key not in oracle["mean"]:
      continue
    o, r, spread = original["mean"][key], oracle["mean"][key], oracle["std"][key]
    distance = abs(o - r)
    z = distance / spread if spread > 0 else (math.inf if distance > 0 else 0.0)
    rows.append({"metric": label, "key": key, "original": o, "oracle": r, "distance": distance,
                 "spread": spread, "z": z, "scale": scale, "unit": unit})
    if key in ("forget_accuracy", "mia_loss_lr") and not z > POWER_Z:
      failed.append(f"{label} distance {scale * distance:.2g}{unit} is {z:.1f} oracle std")
  n_oracle = sum(v is not None for v in oracle.get("per_seed", {}).get("forget_accuracy", []))
  if n_oracle < MIN_FQ_MODELS:
    failed.append(f"{n_oracle} oracle seeds give no spread to compare with (need >= "
                  f"{MIN_FQ_MODELS})")
  fq_orig = (original.get("fq") or {}).get("score")
  fq_ceiling = ceiling.get("score")
  fq_ratio = None
  if fq_orig is not None and fq_ceiling:
    fq_ratio = fq_orig / fq_ceiling
    if fq_ratio > POWER_FQ:
      failed.append(f"the original's FQ is {fq_ratio:.2f} × the ceiling (> {POWER_FQ})")
  else:
    failed.append("FQ and its ceiling cannot be computed with these seeds")
  klom_orig = ((original.get("klom") or {}).get("p95") or {}).get("forget")
  klom_ceil = ((klom_ceiling or {}).get("p95") or {}).get("forget")
  klom_ratio = (klom_orig / klom_ceil if klom_orig is not None and klom_ceil
                and math.isfinite(klom_orig) else None)
  if not rows:
    verdict = "cannot be judged (the original or oracle group has no kept seed)"
  elif failed:
    verdict = "cannot rank methods: " + "; ".join(failed)
  else:
    verdict = (f"can rank methods: doing nothing is > {POWER_Z:g} oracle std from the oracle on "
               f"forget accuracy and MIA loss-LR, and its FQ is {fq_ratio:.2f} × the ceiling")
  return {"rows": rows, "fq_original": fq_orig, "fq_ceiling": fq_ceiling, "fq_ratio": fq_ratio,
          "klom_original": klom_orig, "klom_ceiling": klom_ceil, "klom_ratio": klom_ratio,
          "can_rank": bool(rows) and not failed, "verdict": verdict}


def power_markdown(power: dict) -> str:
  rows = [[r["metric"], _fmt(r["original"], scale=r["scale"], digits=2 if r["unit"] == "" else 1),
           _fmt(r["oracle"], scale=r["scale"], digits=2 if r["unit"] == "" else 1),
           _fmt(r["distance"], scale=r["scale"], digits=2) + (f" {r['unit']}" if r["unit"] else ""),
           _fmt(r["spread"], scale=r["scale"], digits=2) + (f" {r['unit']}" if r["unit"] else ""),
           "∞" if math.isinf(r["z"]) else f"{r['z']:.1f}"] for r in power["rows"]]
  if power.get("fq_original") is not None:
    rows.append(["forgetting quality", f"{power['fq_original']:.3f}",
                 "—" if power["fq_ceiling"] is None else f"ceiling {power['fq_ceiling']:.3f}",
                 "—", "—", "—" if power["fq_ratio"] is None
                 else f"ratio {power['fq_ratio']:.2f}"])
  if power.get("klom_original") is not None:
    rows.append(["KLOM forget (P95)", f"{power['klom_original']:.3f}",
                 "—" if power.get("klom_ceiling") is None
                 else f"ceiling {power['klom_ceiling']:.3f}",
                 "—", "—", "—" if power.get("klom_ratio") is None
                 else f"ratio {power['klom_ratio']:.2f}"])
  u = power.get("ulira")
  if u is not None:  # shadow models: the attack on the original vs on the retrain control
    rows.append(["U-LiRA accuracy (shadow models)", f"{u['original']:.3f}",
                 f"control {u['control']:.3f}", f"{abs(u['original'] - u['control']):.3f}",
                 f"{u['control_std']:.3f} (over targets)",
                 "∞" if math.isinf(u["z"]) else f"{u['z']:.1f}"])
  table = _table(["metric", "original", "oracle", "|original − oracle|", "oracle seed std",
                  "z"], rows)
  return f"{table}\n\n**Verdict:** this setting {power['verdict']}."


# ----------------------------------------------------------------------------------------------
# Summary.


def best_methods(results: dict) -> dict:
  """The best method by ToW and the one with the smallest |Δ forget accuracy|."""
  rows = [g for g in results["groups"].values()
          if g["kind"] == "method" and "mean" in g and g["mean"].get("tow") is not None
          and not g.get("unchanged")]
  if not rows:
    return {}
  by_tow = max(rows, key=lambda g: g["mean"]["tow"])
  by_forget = min(rows, key=lambda g: abs(g["delta"]["forget_accuracy"]["mean"]))
  return {"tow": {"method": by_tow["group"], "value": by_tow["mean"]["tow"]},
          "abs_delta_forget": {"method": by_forget["group"],
                               "value": by_forget["delta"]["forget_accuracy"]["mean"]}}


def make_summary(layout: Workdir, results: dict, run_wall_s: float | None) -> dict:
  groups = {}
  for name, g in results["groups"].items():
    s = {"status": g["status"], "unchanged": g.get("unchanged", False), "cost": g["cost"],
         "cost_relative": g["cost_relative"]}
    if "per_seed" in g:
      s["splits"] = {sp: {m: {"per_seed": g["per_seed"][f"{sp}_{m}"],
                              "mean": g["mean"][f"{sp}_{m}"], "std": g["std"][f"{sp}_{m}"]}
                          for m in ("accuracy", "loss")} for sp in SPLITS}
      s["tow"] = g["mean"].get("tow")
      s["mia_svc_confidence"] = g["mean"].get("mia_svc_confidence")
      s["mia_loss_lr"] = g["mean"].get("mia_loss_lr")
      s["fq"] = (g.get("fq") or {}).get("score")
      s["klom_p95"] = (g.get("klom") or {}).get("p95")
    if g.get("shadow"):
      s["ulira_accuracy"] = g["shadow"]["ulira_accuracy"]["mean"]
      s["shadow_klom_forget"] = g["shadow"]["klom"]["forget"]
    if g.get("error"):
      s["error"] = g["error"]
    groups[name] = s
  return {"dataset": results["dataset"], "model": results["model"], "seeds": results["seeds"],
          "oracle_seeds": results.get("oracle_seeds"),
          "forget": results["forget"], "methods": results["methods"], "groups": groups,
          "best": best_methods(results), "oracle_ceiling": results["oracle_ceiling"].get("score"),
          "klom_ceiling": (results.get("klom_ceiling") or {}).get("p95"),
          "power": {k: (results.get("power") or {}).get(k) for k in ("can_rank", "verdict",
                                                                    "fq_ratio", "klom_ratio")},
          "report": str(layout.report), "wall_s": run_wall_s}


def one_line(summary: dict) -> str:
  """The line `experiments.unlearn` prints at the end."""
  groups = summary["groups"]
  ok = sum(1 for m in summary["methods"] if groups[m]["status"] == "ok")
  bad = [f"{m} {groups[m]['status']}" for m in summary["methods"]
         if groups[m]["status"] != "ok"]
  parts = [f"{summary['dataset']}/{summary['model']} x{len(summary['seeds'])} seeds",
           f"{ok}/{len(summary['methods'])} methods ok" + (f" ({', '.join(bad)})" if bad else "")]
  best = summary.get("best") or {}
  if best:
    parts.append(f"best ToW {best['tow']['method']} {best['tow']['value']:.3f}")
    parts.append(f"closest forget acc {best['abs_delta_forget']['method']} "
                 f"(Δ {100 * best['abs_delta_forget']['value']:+.1f} pp)")
  o = groups["oracle"]["splits"]
  parts.append(f"oracle forget/test {100 * o['forget']['accuracy']['mean']:.1f}/"
               f"{100 * o['test']['accuracy']['mean']:.1f}%")
  if "ulira_accuracy" in groups["oracle"]:
    parts.append(f"U-LiRA retrain {groups['oracle']['ulira_accuracy']:.3f} / original "
                 f"{groups['original']['ulira_accuracy']:.3f}")
  wall = summary.get("wall_s")
  return " | ".join(parts) + (f" | {wall:.0f}s" if wall is not None else "") + \
      f" -> {summary['report']}"


# ----------------------------------------------------------------------------------------------
# Files.


def _fmt(mean, std=None, *, scale=1.0, digits=1, sign=False) -> str:
  if mean is None or (isinstance(mean, float) and math.isnan(mean)):
    return "—"
  s = f"{scale * mean:{'+' if sign else ''}.{digits}f}"
  if std is not None and not (isinstance(std, float) and math.isnan(std)):
    s += f" ± {scale * std:.{digits}f}"
  return s


def _cell(g: dict, key: str, **kw) -> str:
  if "mean" not in g or key not in g["mean"]:
    return "—"
  return _fmt(g["mean"][key], g["std"][key], **kw)


def _dcell(g: dict, key: str, **kw) -> str:
  d = (g.get("delta") or {}).get(key)
  return "—" if d is None else _fmt(d["mean"], d["std"], sign=True, **kw)


def _label(g: dict) -> str:
  return {"original": "original", "oracle": "oracle (retrain)"}.get(g["group"], g["group"])


def _status_cell(g: dict) -> str:
  if g.get("unchanged"):
    return "**no change**"
  if g["status"] == "failed":
    return "**FAILED**"
  if "diverged" in g["status"]:
    return f"**{g['status'].upper()}**" if g["status"] == "diverged" else f"ok ({g['status']})"
  return g["status"]


def _fq_cell(g: dict) -> str:
  fq = g.get("fq")
  if not fq:
    return "—"
  if fq.get("score") is None:
    return f"n/a ({fq.get('note', '')})" if g["group"] != "oracle" else "ceiling: n/a"
  s = f"{fq['score']:.3f}"
  return f"ceiling {s}" if g["group"] == "oracle" else s


def _klom_cell(g: dict, split: str) -> str:
  value = ((g.get("klom") or {}).get("p95") or {}).get(split)
  if not g.get("klom"):
    return "—"
  if value is None or math.isnan(value):
    return "n/a"
  return f"ceiling {value:.3f}" if g["group"] == "oracle" else f"{value:.3f}"


def _klom_models_cell(g: dict) -> str:
  k = g.get("klom") or {}
  if k.get("p95") is None:
    return "—"
  m, o = k["num_models"], k["num_oracle"]
  return f"{m}..{2 * m - 1} vs 0..{m - 1}" if g["group"] == "oracle" else f"{m} vs 0..{o - 1}"


def klom_markdown(results: dict) -> list[str]:
  """The report's KLOM section (lines)."""
  groups = list(results["groups"].values())
  n = len(results["seeds"])
  n_oracle = len(results.get("oracle_seeds") or results["seeds"])
  ceiling = results.get("klom_ceiling") or {}
  table = _table(["method", "models vs oracle models",
                  *(f"KLOM {KLOM_LABELS[s]} (P95)" for s in KLOM_SPLITS)],
                 [[_label(g), _klom_models_cell(g), *(_klom_cell(g, s) for s in KLOM_SPLITS)]
                  for g in groups])
  return [
      "## KLOM",
      "",
      (f"KLOM (Georgiev et al. 2024, arXiv 2410.23232): for each example, KL(unlearned ‖ oracle) "
       "between the histograms of its margin z_y − logsumexp_{j≠y} z_j over the method's seeds "
       f"and over the first {min(n, n_oracle)} oracle seeds ({metrics.KLOM_BINS} equal-width "
       f"bins over their joint range, margins clipped to ±{metrics.KLOM_CLIP:g}, oracle bins "
       f"floored at {metrics.KLOM_EPS:g}); the table gives its {KLOM_Q}th percentile over the "
       "forget, retain and val (the validation split, held out of every model's training) "
       "examples. Lower is better: 0 = identical histograms, about 11.5 = disjoint. The "
       "ceiling row is the small-sample floor, what exact retraining scores: the oracle "
       "models of the FQ ceiling against the same oracle models the methods are scored "
       f"against. With few seeds (here {n} method seeds against {min(n, n_oracle)} oracle "
       f"seeds; the paper uses 100 per side) the estimate is coarse: each histogram has at most "
       f"as many occupied bins as models, of {metrics.KLOM_BINS}, so two small samples often "
       "share no bin and score near the maximum, and the P95 takes only a few distinct values; "
       "read a method's KLOM against the ceiling, not against 0."),
      "",
      f"KLOM ceiling (oracle vs oracle): {_klom_ceiling_line(ceiling)}.",
      "",
      table,
      "",
  ]


def _klom_ceiling_line(ceiling: dict) -> str:
  p95 = ceiling.get("p95")
  if p95 is None:
    return "n/a (" + ceiling.get("note", "") + ")"
  return (" / ".join(f"{KLOM_LABELS[s]} {p95[s]:.3f}" for s in KLOM_SPLITS)
          + f" (P95; {ceiling['note']})")


def _rel_cell(g: dict, key: str) -> str:
  r = (g.get("cost_relative") or {}).get(key)
  return "—" if r is None else f"{r:.3f}×"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
  lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
  lines += ["| " + " | ".join(r) + " |" for r in rows]
  return "\n".join(lines)


def to_markdown(results: dict) -> str:
  groups = list(results["groups"].values())
  ev = results["eval"]
  n = len(results["seeds"])
  n_oracle = len(results.get("oracle_seeds") or results["seeds"])
  pct = dict(scale=100.0, digits=1)
  main = _table(
      ["method", "status", "forget acc %", "retain acc %", "test acc %", "Δ forget pp",
       "Δ retain pp", "Δ test pp", "MIA-SVC conf. %", "MIA loss-LR %", "ToW", "FQ",
       "wall × retrain", "grads × retrain"],
      [[_label(g), _status_cell(g), _cell(g, "forget_accuracy", **pct),
        _cell(g, "retain_accuracy", **pct), _cell(g, "test_accuracy", **pct),
        _dcell(g, "forget_accuracy", **pct), _dcell(g, "retain_accuracy", **pct),
        _dcell(g, "test_accuracy", **pct), _cell(g, "mia_svc_confidence", **pct),
        _cell(g, "mia_loss_lr", **pct), _cell(g, "tow", digits=3), _fq_cell(g),
        _rel_cell(g, "wall_s"), _rel_cell(g, "example_gradients")] for g in groups])
  features = [f for f in ev["svc_features"] if f != "confidence"]
  details = _table(
      ["method", "validation acc %", *(f"{s} loss" for s in SPLITS), "Δ forget loss",
       *(f"MIA-SVC {f} %" for f in features)],
      [[_label(g), _cell(g, "validation_accuracy", **pct),
        *(_cell(g, f"{s}_loss", digits=3) for s in SPLITS),
        _dcell(g, "forget_loss", digits=3),
        *(_cell(g, f"mia_svc_{f}", **pct) for f in features)] for g in groups])
  cost_rows = []
  for g in groups:
    c = g.get("cost") or {}
    grads = c.get("example_gradients")
    cost_rows.append([_label(g), _fmt(c.get("wall_s"), digits=1), _fmt(c.get("cpu_s"), digits=1),
                      "—" if grads is None else f"{grads:,}", _fmt(c.get("epochs"), digits=2),
                      _rel_cell(g, "wall_s"), _rel_cell(g, "example_gradients")])
  cost = _table(["method", "wall s (all seeds)", "CPU s", "example gradients / model", "epochs",
                 "wall × retrain", "grads × retrain"], cost_rows)
  ceiling = results["oracle_ceiling"]
  ceiling_line = (f"{ceiling['score']:.3f} ({ceiling['note']})" if ceiling.get("score") is not None
                  else ceiling.get("note", "n/a"))
  problems = [g for g in groups if g["status"] not in ("ok",)]
  out = [
      f"# Unlearning report: {results['dataset']} / {results['model']}, {n} seeds"
      + (f" ({n_oracle} oracle seeds)" if n_oracle != n else ""),
      "",
      (f"Forget set: {results['forget']['kind']}, {results['forget']['size']} examples. "
       "Numbers are mean ± std over seeds (diverged seeds left out). Δ = oracle − method "
       "(against the oracle's mean; smaller |Δ| is better). MIA-SVC = fraction of forget "
       "examples an SVC (retain vs test) calls non-members; MIA loss-LR = cross-validated "
       "accuracy of a logistic regression on forget vs test losses (50 % = indistinguishable). "
       "ToW = Π over forget/retain/test of (1 − |acc − oracle acc|). FQ = forgetting quality of "
       f"the method's {n} seeds against the first {min(n, n_oracle)} of the {n_oracle} oracle "
       "seeds; with few seeds it is coarse (only 2·ceil(ln(N−1)) score bins), so read it against "
       "the ceiling below. Cost is relative to retraining (the oracle group), per model (wall "
       "time assumes linear scaling with the number of models)."),
      "",
      f"Forgetting-quality ceiling (oracle vs oracle): {ceiling_line}.",
      "",
      "## Benchmark power",
      "",
      ("How far the original model, which unlearned nothing, is from the retrain oracle, beside "
       "how far retrained models fall from each other (std over oracle seeds; z = distance / "
       "std). A method can only be told apart from doing nothing where the distance is large. "
       "FQ and KLOM: the original's score beside the oracle-vs-oracle ceiling (for KLOM, lower "
       "is better, so a ratio far above 1 leaves room between doing nothing and the floor; it "
       "is not part of the verdict)."),
      "",
      power_markdown(results["power"]) if results.get("power") else "—",
      "",
      "## Methods",
      "",
      main,
      "",
      *klom_markdown(results),
  ]
  if problems:
    out += ["## Failed or diverged", ""]
    for g in problems:
      bad = [s for s, d in zip(g["seeds"], g["diverged"]) if d]
      reason = g.get("error") or (f"diverged seeds: {bad}" if bad else
                                  "not run (no result.json)" if g["status"] == "missing"
                                  else g["status"])
      out.append(f"- **{g['group']}**: {g['status']} — {reason}")
    out.append("")
  recipes = [[_label(g), recipe_cell(g)] for g in groups if g["kind"] == "method"]
  if recipes:
    out += ["## Recipes", "",
            ("Where each method's hyperparameters come from: `fast` (our small-scale defaults) "
             "or `official` (the public code's; docs/recipes.md), or `user` (your own method, "
             "from its DEFAULTS), and the fields changed from it; the values used are in "
             "results.json."), "",
            _table(["method", "recipe"], recipes), ""]
  out += ["## Losses and other MIA features", "", details, "", "## Cost", "", cost, ""]
  if results.get("shadows"):
    from unlearn_jax.pipelines import shadows  # noqa: PLC0415
    sh = results["shadows"]
    out += ([sh["note"], ""] if "note" in sh else
            [shadows.report_md(sh, title="## Shadow models: U-LiRA and KLOM", sub="###"), ""])
  if results.get("plots"):
    out += ["## Plots", ""]
    for title, rel in results["plots"].items():
      out += [f"![{title}]({rel})", ""]
  return "\n".join(out)


def _csv_columns(results: dict) -> list[str]:
  keys = [f"{s}_{m}" for s in SPLITS for m in ("accuracy", "loss")]
  keys += ["mia_loss_lr", *(f"mia_svc_{f}" for f in results["eval"]["svc_features"]), "tow"]
  cols = ["group", "status", "recipe", "seeds", "diverged_seeds"]
  for k in keys:
    cols += [f"{k}_mean", f"{k}_std"]
  for k in DELTA_METRICS:
    cols += [f"delta_{k}_mean", f"delta_{k}_std"]
  cols += ["fq", "fq_forget_score", *(f"klom_{s}_p95" for s in KLOM_SPLITS)]
  if (results.get("shadows") or {}).get("ulira"):
    cols += ["ulira_accuracy_mean", "ulira_accuracy_std", "ulira_auc_mean",
             "ulira_tpr_at_1pct_fpr_mean", *(f"shadow_klom_{s}_p95" for s in SHADOW_KLOM_SPLITS)]
  cols += ["cost_wall_s",
           "cost_example_gradients", "cost_epochs", "rel_wall_s", "rel_example_gradients",
           "error"]
  return cols


SHADOW_KLOM_SPLITS = ("forget", "retain", "validation")


def to_csv(results: dict) -> str:
  cols = _csv_columns(results)
  buf = _io.StringIO()
  w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
  w.writeheader()
  num = lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else repr(
      float(v)) if isinstance(v, float) else v
  for g in results["groups"].values():
    row = {"group": g["group"], "status": g["status"],
           "recipe": recipe_cell(g) if g["kind"] == "method" else "", "seeds": len(g["seeds"]),
           "diverged_seeds": int(sum(g["diverged"])), "error": g.get("error") or ""}
    for k in g.get("mean", {}):
      row[f"{k}_mean"], row[f"{k}_std"] = num(g["mean"][k]), num(g["std"][k])
    for k, d in (g.get("delta") or {}).items():
      row[f"delta_{k}_mean"], row[f"delta_{k}_std"] = num(d["mean"]), num(d["std"])
    fq = g.get("fq") or {}
    row["fq"], row["fq_forget_score"] = num(fq.get("score")), num(fq.get("forget_score"))
    p95 = (g.get("klom") or {}).get("p95") or {}
    for s in KLOM_SPLITS:
      row[f"klom_{s}_p95"] = num(p95.get(s))
    sh = g.get("shadow")
    if sh:
      row.update(ulira_accuracy_mean=num(sh["ulira_accuracy"]["mean"]),
                 ulira_accuracy_std=num(sh["ulira_accuracy"]["std"]),
                 ulira_auc_mean=num(sh["ulira_auc"]["mean"]),
                 ulira_tpr_at_1pct_fpr_mean=num(sh["ulira_tpr@0.01"]["mean"]),
                 **{f"shadow_klom_{s}_p95": num(sh["klom"][s]) for s in SHADOW_KLOM_SPLITS})
    c, r = g.get("cost") or {}, g.get("cost_relative") or {}
    row.update(cost_wall_s=num(c.get("wall_s")), cost_example_gradients=num(
        c.get("example_gradients")), cost_epochs=num(c.get("epochs")),
               rel_wall_s=num(r.get("wall_s")), rel_example_gradients=num(
                   r.get("example_gradients")))
    w.writerow({k: v for k, v in row.items() if k in cols})
  return buf.getvalue()


def histogram_examples(oracle_conf: np.ndarray, k: int) -> list[int]:
  """k forget examples spread over the oracle's median confidence (hard .. easy)."""
  if k <= 0 or oracle_conf.size == 0:
    return []
  order = np.argsort(np.median(oracle_conf, axis=0), kind="stable")
  picks = np.linspace(0.05, 0.95, k) if k > 1 else np.array([0.5])
  return sorted({int(order[int(q * (len(order) - 1))]) for q in picks})


def write_plots(layout: Workdir, results: dict, confs: Mapping[str, np.ndarray],
                oracle_conf: np.ndarray, ev: Mapping[str, Any]) -> dict[str, str]:
  """The report's PNGs; returns title -> path relative to the workdir."""
  from unlearn_jax import plotting

  plots_dir = layout.plots
  groups = [g for g in results["groups"].values() if "mean" in g]
  out = {}
  points = [{"name": _label(g), "kind": g["group"] if g["kind"] == "reference" else "method",
             "forget": (g["mean"]["forget_accuracy"], g["std"]["forget_accuracy"]),
             "test": (g["mean"]["test_accuracy"], g["std"]["test_accuracy"])} for g in groups]
  plotting.forget_vs_test(points, plots_dir / "forget_vs_test.png")
  out["Forget vs test accuracy"] = "plots/forget_vs_test.png"
  series = {"MIA-SVC confidence": ([g["mean"]["mia_svc_confidence"] for g in groups],
                                   [g["std"]["mia_svc_confidence"] for g in groups])
            if "confidence" in ev["svc_features"] else None,
            "MIA loss-LR": ([g["mean"]["mia_loss_lr"] for g in groups],
                            [g["std"]["mia_loss_lr"] for g in groups])}
  series = {k: v for k, v in series.items() if v is not None}
  oracle = results["groups"]["oracle"]["mean"]
  plotting.mia_bars([_label(g) for g in groups], series, plots_dir / "mia.png",
                    oracle={"MIA-SVC confidence": oracle.get("mia_svc_confidence", math.nan),
                            "MIA loss-LR": oracle["mia_loss_lr"]})
  out["Membership inference"] = "plots/mia.png"
  rows = [(_label(results["groups"][name]), c) for name, c in confs.items() if c.shape[0]]
  if rows:
    examples = histogram_examples(oracle_conf, int(ev["hist_examples"]))
    plotting.confidence_histograms(rows, oracle_conf, examples, plots_dir / "confidence_hist.png")
    out["Logit-scaled confidence, unlearned vs retrained"] = "plots/confidence_hist.png"
  eps = [(_label(g), g["fq"]["eps_hist"]) for g in groups
         if g["group"] != "oracle" and (g.get("fq") or {}).get("eps_hist")]
  if eps:
    plotting.epsilon_histograms(eps, results["oracle_ceiling"].get("eps_hist"),
                                plots_dir / "epsilon_hist.png")
    out["Per-example ε, methods vs ceiling"] = "plots/epsilon_hist.png"
  return out
