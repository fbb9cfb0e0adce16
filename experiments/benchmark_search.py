"""Measure candidate default benchmarks: can each tell unlearning from doing nothing?

  python -m experiments.benchmark_search --config=experiments/configs/benchmark_search.py \
      --workdir=DIR

Trains the original and oracle groups of every setting in DIR/<setting>/ (resumable), writes each
one's report of the two groups there, appends a row per finished setting to DIR/search.jsonl and
writes the comparison table DIR/search.md (printed too).
"""

from experiments.launch import run_launcher
from unlearn_jax.pipelines.benchmark_search import run_search, to_markdown


def job(config, workdir) -> str:
  settings = {}
  for name, setting in config.settings.items():
    setting.progress = config.progress
    settings[name] = setting
  return to_markdown(run_search(settings, workdir))


if __name__ == "__main__":
  run_launcher("experiments/configs/benchmark_search.py",
               "Benchmark-search config (ml_collections).", "Folder for every setting's runs.",
               job)
