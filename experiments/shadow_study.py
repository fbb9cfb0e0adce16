"""Shadow-model study: memorisation-based forget sets, U-LiRA and KLOM for every method.

  python -m experiments.shadow_study --config=experiments/configs/shadow_study.py --workdir=DIR

Trains a memorisation bank (DIR/bank/), then for every forget-pool kind (IID, RUM's high / mid
/ low memorisation) the whole shadow evaluation (DIR/<kind>/), and writes DIR/report.md (the
tables, RUM's claim checked with the config's thresholds, plots/) and results.json; prints one
line. Resumable.
"""

from experiments.launch import run_launcher
from unlearn_jax.pipelines.shadow_study import run_shadow_study


def job(config, workdir) -> str:
  r = run_shadow_study(config, workdir)
  ctrl = {k: s["ulira"]["retrain (control)"]["accuracy"]["mean"] for k, s in r["kinds"].items()}
  claims = "; ".join(f"{c['measure']} gap {c['verdict']}" for c in r["claims"]) or "no claim"
  return (f"{len(r['kinds'])} pool kinds x {r['bank']['models']} shadow models | U-LiRA retrain "
          f"control {', '.join(f'{k} {v:.3f}' for k, v in ctrl.items())} | RUM claim: {claims} | "
          f"{r['wall_s']:.0f}s -> {workdir}/report.md")


if __name__ == "__main__":
  run_launcher("experiments/configs/shadow_study.py", "Shadow-study config (ml_collections).",
               "Folder of the study (a bank and one shadow workdir per pool kind).", job)
