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

from absl import app, flags, logging
from ml_collections import config_flags

from unlearn_jax.runtime import configure_from_config
from unlearn_jax.tune_pipeline import format_table, run_tune

_CONFIG = config_flags.DEFINE_config_file("config", "experiments/configs/unlearn.py",
                                          "Unlearning config (ml_collections) with a `tune` section.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Experiment folder (shared with experiments.unlearn).",
                               required=True)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  configure_from_config(_CONFIG.value)
  config = _CONFIG.value
  results = run_tune(config, _WORKDIR.value)
  print(f"goal {config.tune.goal}, λ = {config.tune.lam}; selected by mean objective over "
        f"{len(config.seeds)} seeds (* = selected)")
  for name, out in results.items():
    print(format_table(name, out))


if __name__ == "__main__":
  app.run(main)
