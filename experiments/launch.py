"""What every config-driven launcher shares: the --config/--workdir flags, the process setup
(`unlearn_jax.runtime`: deterministic GPU ops, float32 matmuls, compilation cache) and printing
the run's one-line result."""

from __future__ import annotations

from typing import Any, Callable

from absl import app, flags, logging
from ml_collections import config_flags

from unlearn_jax.runtime import configure_from_config


def run_launcher(default_config: str, config_help: str, workdir_help: str,
                 job: Callable[[Any, str], str]) -> None:
  """Define the flags, then run `job(config, workdir)` under absl and print what it returns."""
  config_flag = config_flags.DEFINE_config_file("config", default_config, config_help)
  workdir_flag = flags.DEFINE_string("workdir", None, workdir_help, required=True)

  def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint step at INFO
    configure_from_config(config_flag.value)
    print(job(config_flag.value, workdir_flag.value))

  app.run(main)
