"""Memorisation scores from shadow models (Feldman & Zhang 2020; RUM, arXiv 2406.01257).

  python -m experiments.memorization --config=experiments/configs/memorization.py --workdir=DIR

Trains K models, each on its own random half of the training set, in one compiled program
(DIR/shadows/, resumable), and writes DIR/memorization.npz (per-example Feldman-Zhang score,
standard error, confidence proxy: the scores file of `forget.kind=memorization`) and
DIR/shadows/scores.json (histogram, Spearman correlation with the proxy); prints one line.
"""

from experiments.launch import run_launcher
from unlearn_jax.pipelines.shadows import run_memorization


def job(config, workdir) -> str:
  s = run_memorization(config, workdir)
  return (f"{s['models']} shadow models | {s['scored']}/{s['examples']} examples scored | "
          f"mean memorisation {s['mean_score']:.3f}, {100 * s['share_above_0.5']:.1f} % > 0.5 | "
          f"Spearman vs confidence proxy {s['spearman_score_proxy']:.3f} | "
          f"test acc {s['test_accuracy']['mean']:.3f} | {s['wall_s']:.0f}s -> {s['scores_file']}")


if __name__ == "__main__":
  run_launcher("experiments/configs/memorization.py", "Memorisation config (ml_collections).",
               "Folder for the shadow models and memorization.npz.", job)
