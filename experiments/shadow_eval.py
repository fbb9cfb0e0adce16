"""U-LiRA on shadow models (Hayes et al., arXiv 2403.01218) for every unlearning method.

  python -m experiments.shadow_eval --config=experiments/configs/unlearn.py:shadows=64 --workdir=DIR

Checks the whole config (as `experiments.unlearn`, same workdir), then trains K half-data
shadow models and K retrain oracles in one program each (DIR/shadows/; the main job's reference
models are not needed), lets every method unlearn
every shadow model's own forget set (one stacked run per method), and writes
DIR/shadows/report.md and results.json (U-LiRA accuracy, AUC, TPR at 1 % and 0.1 % FPR per
method, beside the retrain control (~0.5) and the original) and DIR/memorization.npz; prints one
line. Resumable: finished models and methods are reused.
"""

from experiments.launch import run_launcher
from unlearn_jax.pipelines.shadows import run_shadow_eval


def job(config, workdir) -> str:
  s = run_shadow_eval(config, workdir)
  acc = {k: v["accuracy"]["mean"] for k, v in s["ulira"].items()}
  ctrl, orig = acc.pop("retrain (control)"), acc.pop("original (no unlearning)")
  best = min(acc, key=lambda k: abs(acc[k] - 0.5)) if acc else "-"
  return (f"{s['models']} shadow models | U-LiRA accuracy: retrain control {ctrl:.3f}, original "
          f"{orig:.3f}, closest to 0.5: {best} {acc.get(best, float('nan')):.3f} | "
          f"{s['wall_s']:.0f}s -> {workdir}/shadows/report.md")


if __name__ == "__main__":
  run_launcher("experiments/configs/unlearn.py", "Main-job config with a shadows section "
               "(ml_collections).", "Folder of the experiment (shared with experiments.unlearn).",
               job)
