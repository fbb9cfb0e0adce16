"""Recompute the unlearning report of a workdir from its saved logits (nothing is retrained).

  python -m experiments.evaluate --workdir=DIR

Reads DIR/eval/*.npz and DIR/methods/*/result.json written by `experiments.unlearn` and rewrites
DIR/report.md, results.csv, results.json, summary.json and plots/*.png, e.g. after a change to
the metrics or to `config.eval` in DIR/config.json. Prints the same one-line summary.
"""

from absl import app, flags, logging

from unlearn_jax.report import evaluate_workdir, one_line

_WORKDIR = flags.DEFINE_string("workdir", None, "Workdir of a finished experiments.unlearn run.",
                               required=True)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  print(one_line(evaluate_workdir(_WORKDIR.value)))


if __name__ == "__main__":
  app.run(main)
