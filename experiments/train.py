"""Train the original model and the retrain oracle for every configured seed.

  python -m experiments.train --config=experiments/configs/train.py --workdir=DIR

Writes DIR/config.json, DIR/forget_set.npz, DIR/models/<group>/metrics.jsonl (per epoch),
checkpoints, and DIR/summary.json, then prints a one-line summary. Re-running the same command
resumes an interrupted run and does not recompute finished models.
"""

from absl import app, flags, logging
from ml_collections import config_flags

from unlearn_jax.runtime import configure_from_config
from unlearn_jax.pipeline import one_line, run_train

_CONFIG = config_flags.DEFINE_config_file("config", "experiments/configs/train.py",
                                          "Training config (ml_collections).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Folder for checkpoints and results.",
                               required=True)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint step at INFO
  configure_from_config(_CONFIG.value)
  summary = run_train(_CONFIG.value, _WORKDIR.value)
  print(one_line(summary, _WORKDIR.value))


if __name__ == "__main__":
  app.run(main)
