"""The correlation study of Thudi et al., "Unrolling SGD" (EuroS&P 2022), at CPU scale.

  python -m experiments.unroll_sgd --config=experiments/configs/unroll_sgd.py --workdir=DIR

Pretrains one model per SD-loss λ (DIR/pretrain/, resumable), unrolls M and the lockstep
retrained M' for every (λ, η, seed) (DIR/unroll/, one file per λ), then writes DIR/report.md (the
headline claims checked one by one, correlations, the SD table, plots/), results.json,
results.csv (every point) and summary.json, and prints a one-line summary.
"""

from experiments.launch import run_launcher
from unlearn_jax.pipelines.unroll_sgd import one_line, run_unroll_sgd


def job(config, workdir) -> str:
  return one_line(run_unroll_sgd(config, workdir), workdir)


if __name__ == "__main__":
  run_launcher("experiments/configs/unroll_sgd.py", "Unroll-SGD config (ml_collections).",
               "Folder for the pretrained models, unroll records and report.", job)
