"""Train the original model and the retrain oracle for every configured seed.

  python -m experiments.train --config=experiments/configs/train.py --workdir=DIR

Writes DIR/config.json, DIR/forget_set.npz, DIR/models/<group>/metrics.jsonl (per epoch),
checkpoints, and DIR/summary.json, then prints a one-line summary. Re-running the same command
resumes an interrupted run and does not recompute finished models.
"""

from experiments.launch import run_launcher
from unlearn_jax.pipelines.reference import one_line, run_train


def job(config, workdir) -> str:
  return one_line(run_train(config, workdir), workdir)


if __name__ == "__main__":
  run_launcher("experiments/configs/train.py", "Training config (ml_collections).",
               "Folder for checkpoints and results.", job)
