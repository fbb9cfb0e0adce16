"""Recompute the unlearning report of a workdir from its saved logits (nothing is retrained).

  python -m experiments.evaluate --workdir=DIR

Reads DIR/eval/*.npz and DIR/methods/*/result.json written by `experiments.unlearn` and rewrites
DIR/report.md, results.csv, results.json, summary.json and plots/*.png, e.g. after a change to
the metrics or to `config.eval` in DIR/config.json. Prints the same one-line summary. A workdir
without a finished run (or with a corrupted file) is a one-line error, exit status 2.
"""

from experiments.launch import run_launcher
from unlearn_jax.pipelines.report import evaluate_workdir, one_line


def job(config, workdir) -> str:
  del config
  return one_line(evaluate_workdir(workdir))


if __name__ == "__main__":
  run_launcher(None, "", "Workdir of a finished experiments.unlearn run.", job)
