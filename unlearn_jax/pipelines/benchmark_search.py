"""Which benchmark setting can tell unlearning from doing nothing? (behind
`experiments.benchmark_search`)

  run_search(settings, workdir) -> [row, ...]

For every named setting (a training config: data, forget set, model, recipe, seeds), train the
`original` and `oracle` groups in `workdir/<name>/` (resumable, exactly as `experiments.train`),
save their logits and compute the unlearning report of the two groups (`pipelines.report`): the
original model is the "method" that unlearned nothing. A row holds the original's train and test
accuracy, the oracle's forget accuracy, Δforget, both MIAs for original and oracle, the
original's forgetting quality beside the oracle-vs-oracle ceiling, the benchmark-power verdict
(`report.benchmark_power`) and the seconds of reference training. Rows are appended to
`workdir/search.jsonl` as settings finish, and `workdir/search.md` is the table.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping

from tqdm.auto import tqdm

from unlearn_jax import io
from unlearn_jax.pipelines import experiment, reference, report, validate
from unlearn_jax.pipelines.layout import Workdir


def check_settings(settings: Mapping[str, Any]) -> None:
  """Every setting's config is valid (before anything is trained or written)."""
  for config in settings.values():
    validate.plan(config)


def run_setting(name: str, config, workdir: Path) -> dict:
  """Train (or reuse) one setting's reference groups and measure the benchmark's power."""
  t0 = time.perf_counter()
  exp = experiment.setup(config, workdir)
  splits = exp.splits()
  costs = {}
  for group in experiment.REFERENCE_GROUPS:
    state, costs[group] = reference.train_reference(exp, group)
    if not exp.layout.logits(group).exists():
      experiment.save_logits(exp.layout.logits(group), state, splits, config.train.eval_batch_size,
                             config.train.model_axis)
  io.atomic_write_json(exp.layout.references, costs)
  report.evaluate_workdir(exp.workdir)
  results = io.read_json(exp.layout.results_json)
  return search_row(name, config, results, costs, time.perf_counter() - t0)


def search_row(name: str, config, results: dict, costs: dict, wall_s: float) -> dict:
  orig, oracle = results["groups"]["original"], results["groups"]["oracle"]
  om, rm = orig["mean"], oracle["mean"]
  nf = results["forget"]["size"]
  power = results["power"]
  return {
      "setting": name, "dataset": results["dataset"], "model": results["model"],
      "width": config.model.width, "epochs": config.train.epochs,
      "weight_decay": config.train.weight_decay,
      "max_train_examples": config.data.max_train_examples,
      "forget": f"{results['forget']['kind']} {nf}",
      "seeds": len(results["seeds"]), "oracle_seeds": len(results["oracle_seeds"]),
      "train_acc": train_accuracy(results, "original"),
      "forget_acc": om["forget_accuracy"], "test_acc": om["test_accuracy"],
      "oracle_forget_acc": rm["forget_accuracy"], "oracle_test_acc": rm["test_accuracy"],
      "delta_forget": orig["delta"]["forget_accuracy"]["mean"],
      "mia_loss_lr": om["mia_loss_lr"], "oracle_mia_loss_lr": rm["mia_loss_lr"],
      "mia_svc": om.get("mia_svc_confidence"), "oracle_mia_svc": rm.get("mia_svc_confidence"),
      "fq": power["fq_original"], "fq_ceiling": power["fq_ceiling"],
      "can_rank": power["can_rank"], "verdict": power["verdict"],
      "train_s": sum(c["wall_s"] for c in costs.values()), "wall_s": wall_s,
  }


def train_accuracy(results: dict, group: str) -> float:
  """Accuracy on the whole training set: forget and retain accuracies weighted by their sizes."""
  g = results["groups"][group]["mean"]
  nf = results["forget"]["size"]
  nr = results["retain_size"]
  return (nf * g["forget_accuracy"] + nr * g["retain_accuracy"]) / (nf + nr)


def run_search(settings: Mapping[str, Any], workdir) -> list[dict]:
  """Run every setting (skipping finished ones) and write search.jsonl and search.md."""
  check_settings(settings)
  root = Workdir(workdir).root
  experiment.check_workdir_path(root)
  path = root / "search.jsonl"
  done = {r["setting"]: r for r in io.read_jsonl(path)}
  rows = []
  for name, config in tqdm(settings.items(), desc="benchmark settings", leave=False,
                           disable=not all(c.get("progress", True) for c in settings.values())):
    if name not in done:
      done[name] = run_setting(name, config, root / name)
      io.append_jsonl(path, done[name])
    rows.append(done[name])
  io.atomic_write_text(root / "search.md", to_markdown(rows))
  return rows


def _pct(v) -> str:
  return "—" if v is None else f"{100 * v:.1f}"


def to_markdown(rows) -> str:
  head = ["setting", "data", "model (width)", "epochs", "wd", "forget", "seeds (orig + oracle)",
          "train / forget / test acc % (original)", "oracle forget acc %", "Δforget pp",
          "MIA loss-LR % orig / oracle", "MIA-SVC % orig / oracle", "FQ orig / ceiling",
          "can rank", "train s"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for r in rows:
    fq = ("—" if r["fq"] is None else f"{r['fq']:.3f}") + " / " + (
        "—" if r["fq_ceiling"] is None else f"{r['fq_ceiling']:.3f}")
    lines.append("| " + " | ".join([
        r["setting"], r["dataset"] + (f" ({r['max_train_examples']} train)"
                                      if r["max_train_examples"] else ""),
        f"{r['model']} ({r['width']:g})", str(r["epochs"]), f"{r['weight_decay']:g}",
        r["forget"], f"{r['seeds']} + {r['oracle_seeds']}",
        f"{_pct(r['train_acc'])} / {_pct(r['forget_acc'])} / {_pct(r['test_acc'])}",
        _pct(r["oracle_forget_acc"]), f"{100 * r['delta_forget']:+.1f}",
        f"{_pct(r['mia_loss_lr'])} / {_pct(r['oracle_mia_loss_lr'])}",
        f"{_pct(r['mia_svc'])} / {_pct(r['oracle_mia_svc'])}", fq,
        "yes" if r["can_rank"] else "no", f"{r['train_s']:.0f}"]) + " |")
  return "\n".join(lines) + "\n"
