"""DEL's localization study: strategies, budgets, algorithms, ablation, cost vs quality.

  python -m experiments.del_localization --config=experiments/configs/del_localization.py \
      --workdir=DIR

For an IID and a non-IID forget set (DIR/iid/, DIR/non_iid/), trains (or reuses) the original and
oracle groups, runs every cell of parts (a)-(e) of `10-del.md` (resumable: a finished cell is
never recomputed), and writes DIR/report.md (tables, plots, the headline claims checked),
results.json, summary.json and plots/; then prints a one-line summary.
"""

from experiments.launch import run_launcher
from unlearn_jax.pipelines.del_localization import one_line, run_del_localization


def job(config, workdir) -> str:
  return one_line(run_del_localization(config, workdir))


if __name__ == "__main__":
  run_launcher("experiments/configs/del_localization.py", "DEL localization config "
               "(ml_collections).", "Folder for the models, cells and the report.", job)
