"""Choose methods' hyperparameters on the validation split (`30-overparam.md` §5).

  python -m experiments.tune --config=experiments/configs/unlearn.py:methods=ga+neggrad \
      --workdir=DIR

Trains (or reuses, as `experiments.unlearn` does) the original models of DIR, runs every point of
each method's grid `config.tune.space.<method>` on them, and picks the point with the smallest
objective `config.tune.goal` (privacy | bias) with trade-off `config.tune.lam`, from validation
and forget errors only (no test data, no oracle). Writes DIR/tuning/<method>.jsonl (every
candidate) and DIR/tuning/<method>_best.json, prints a table per method (`*` = selected). A
rerun skips finished candidates. Use the result with
`python -m experiments.unlearn ... --config.method_configs.<method>.<name>=<best value>`.
"""

from experiments.launch import run_launcher
from unlearn_jax.pipelines.tune import format_table, run_tune


def job(config, workdir) -> str:
  results = run_tune(config, workdir)
  lines = [f"goal {config.tune.goal}, λ = {config.tune.lam}; selected by mean objective over "
           f"{len(config.seeds)} seeds (* = selected)"]
  lines += [format_table(name, out) for name, out in results.items()]
  return "\n".join(lines)


if __name__ == "__main__":
  run_launcher("experiments/configs/unlearn.py",
               "Unlearning config (ml_collections) with a `tune` section.",
               "Experiment folder (shared with experiments.unlearn).", job)
