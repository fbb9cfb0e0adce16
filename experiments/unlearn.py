"""Unlearn with every configured method and compare each with the retrain oracle.

  python -m experiments.unlearn --config=experiments/configs/unlearn.py --workdir=DIR

Trains (or reuses) the `original` and `oracle` groups of N seeds like `experiments.train`, runs
each method of `config.methods` on the original models, saves the unlearned models and the
logits of every group, and writes DIR/report.md, results.csv, results.json, summary.json and
plots/*.png; then prints a one-line summary. Re-running the same command reuses everything that
finished (a method is rerun only if it failed, was interrupted or its hyperparameters changed).
`python -m experiments.evaluate --workdir=DIR` recomputes the report from the saved logits.
"""

from experiments.launch import run_launcher
from unlearn_jax.pipelines.report import one_line
from unlearn_jax.pipelines.unlearn import run_unlearn


def job(config, workdir) -> str:
  return one_line(run_unlearn(config, workdir))


if __name__ == "__main__":
  run_launcher("experiments/configs/unlearn.py", "Unlearning config (ml_collections).",
               "Folder for models, logits and the report.", job)
