"""Where every file of an experiment's workdir lives (the one place that names them).

  config.json                   the config that made the results (checked on reuse)
  forget_set.npz                forget indices and training labels, shared by every model
  summary.json                  headline numbers of the last run (train or unlearn)
  models/<group>/               reference group (`original`, `oracle`): checkpoints/<epoch>/
                                (orbax) and metrics.jsonl (one record per epoch)
  methods/<name>/               checkpoint/ (the unlearned stacked state) and result.json
                                (written last: its presence means the method finished)
  eval/<group>.npz              logits of every model of a group on the evaluation splits
  eval/references.json          cost of the reference groups
  report.md, results.csv, results.json, plots/   the unlearning report
  tuning/<method>.jsonl         one row per finished tuning candidate
  tuning/<method>_best.json     the selected candidate
"""

from __future__ import annotations

import dataclasses
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class Workdir:
  """The paths of one workdir (nothing is created or read here)."""
  root: Path

  def __post_init__(self):
    object.__setattr__(self, "root", Path(self.root).absolute())

  @property
  def config(self) -> Path:
    return self.root / "config.json"

  @property
  def forget_set(self) -> Path:
    return self.root / "forget_set.npz"

  @property
  def summary(self) -> Path:
    return self.root / "summary.json"

  def group(self, group: str) -> Path:
    """Run folder of reference group `group` (checkpoints/ and metrics.jsonl)."""
    return self.root / "models" / group

  def method(self, name: str) -> Path:
    return self.root / "methods" / name

  def method_result(self, name: str) -> Path:
    return self.method(name) / "result.json"

  def method_checkpoint(self, name: str) -> Path:
    return self.method(name) / "checkpoint"

  @property
  def eval_dir(self) -> Path:
    return self.root / "eval"

  def logits(self, group: str) -> Path:
    """Saved logits of a reference group or a method."""
    return self.eval_dir / f"{group}.npz"

  @property
  def references(self) -> Path:
    return self.eval_dir / "references.json"

  @property
  def report(self) -> Path:
    return self.root / "report.md"

  @property
  def results_csv(self) -> Path:
    return self.root / "results.csv"

  @property
  def results_json(self) -> Path:
    return self.root / "results.json"

  @property
  def plots(self) -> Path:
    return self.root / "plots"

  @property
  def tuning(self) -> Path:
    return self.root / "tuning"

  def tuning_rows(self, name: str) -> Path:
    return self.tuning / f"{name}.jsonl"

  def tuning_best(self, name: str) -> Path:
    return self.tuning / f"{name}_best.json"

  def result_folders(self) -> tuple[Path, ...]:
    """The folders that hold computed results (models, methods, logits, tuning rows)."""
    return (self.root / "models", self.root / "methods", self.eval_dir, self.tuning)

  def holds_results(self) -> bool:
    """Whether anything was computed here (a folder of `result_folders` has any file)."""
    return any(p.is_dir() and any(f.is_file() for f in p.rglob("*"))
               for p in self.result_folders())
