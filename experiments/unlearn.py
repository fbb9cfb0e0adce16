"""Unlearn with every configured method and compare each with the retrain oracle.

  python -m experiments.unlearn --config=experiments/configs/unlearn.py --workdir=DIR

Trains (or reuses) the `original` and `oracle` groups of N seeds like `experiments.train`, runs
each method of `config.methods` on the original models, saves the unlearned models and the
logits of every group, and writes DIR/report.md, results.csv, results.json, summary.json and
plots/*.png; then prints a one-line summary. Re-running the same command reuses everything that
finished (a method is rerun only if it failed, was interrupted or its hyperparameters changed).
`python -m experiments.evaluate --workdir=DIR` recomputes the report from the saved logits.
"""

from absl import app, flags, logging
from ml_collections import config_flags

from unlearn_jax.runtime import configure_from_config
from unlearn_jax.report import one_line
from unlearn_jax.unlearn_pipeline import run_unlearn

_CONFIG = config_flags.DEFINE_config_file("config", "experiments/configs/unlearn.py",
                                          "Unlearning config (ml_collections).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Folder for models, logits and the report.",
                               required=True)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint step at INFO
  configure_from_config(_CONFIG.value)
  summary = run_unlearn(_CONFIG.value, _WORKDIR.value)
  print(one_line(summary))


if __name__ == "__main__":
  app.run(main)
