"""How does width change unlearning? (Alon & Dar, `30-overparam.md`.)

  python -m experiments.width_sweep --config=experiments/configs/width_sweep.py --workdir=DIR

For every width of `config.sweep.widths` and every goal (privacy, bias removal): the original
and oracle groups, the methods tuned per width and goal on the validation split, their test /
forget error, MIA, objective J and decision-region change near and away from the forget set.
Resumable per width, goal and method (DIR/w<k>/<goal>/); writes DIR/report.md (with the spec's
headline claims checked), results.json, results.csv and plots/, and prints a one-line summary.
"""

from experiments.launch import run_launcher
from unlearn_jax.pipelines.width_sweep import one_line, run_sweep


def job(config, workdir) -> str:
  return one_line(run_sweep(config, workdir), workdir)


if __name__ == "__main__":
  run_launcher("experiments/configs/width_sweep.py", "Width-sweep config (ml_collections).",
               "Folder of the sweep (one experiment per width and goal inside).", job)
