"""Benchmark: forgetting-quality score (NeurIPS 2023 unlearning challenge) on CPU.

Times :func:`unlearn_jax.metrics.forgetting_quality` (per-example ε over the official grids of
~160,000 double- and several hundred single-threshold rules per example, then the bucket score)
for a forget set of 1,000 examples with M = 32, 128 and 512 models per group, on random confidences:
example ``i`` has a typical confidence ``c_i ~ N(0, 3)``; retrained models give ``c_i + N(0, 1)``,
unlearned ones ``c_i + 0.3 + N(0, 1)`` (overlapping samples, so no example takes the cheap
"collapsed" path; about 3 % of them have 401 right ends and take the slower row path).

One warm-up call, then the median (and min) of ``--repeats`` timed calls. Prints a Markdown table
and writes ``benchmarks/results/forgetting_quality_<tag>.json`` with the numbers and a description
of the machine.

Usage::

    python benchmarks/forgetting_quality.py [--num-examples 1000] [--models 32 128 512]
                                            [--repeats 5] [--tag NAME]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import re
import socket
import statistics
import sys
from pathlib import Path
import time

import numpy as np

import unlearn_jax
from unlearn_jax import metrics

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model  # noqa: E402  (the scripts beside this one)


def machine_description() -> dict:
  import jax  # only for its version; the metric itself is NumPy.

  try:
    load = os.getloadavg()
  except OSError:
    load = None
  try:
    usable_cpus = len(os.sched_getaffinity(0))
  except AttributeError:
    usable_cpus = os.cpu_count()
  return {
    "platform": platform.platform(),
    "processor": platform.processor() or platform.machine(),
    "cpu_model": cpu_model(),
    "machine": platform.machine(),
    "hostname": socket.gethostname(),
    "cpu_count": os.cpu_count(),
    "usable_cpus": usable_cpus,
    "load_average_at_start": load,
    "python": platform.python_version(),
    "numpy": np.__version__,
    "jax": jax.__version__,
    # Which checkout was timed (a script finds the installed package, not necessarily this one).
    "unlearn_jax": str(pathlib.Path(unlearn_jax.__file__).resolve().parent),
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
  }


def default_tag() -> str:
  tag = f"{socket.gethostname()}-{platform.machine()}-{os.cpu_count()}cpu"
  return re.sub(r"[^A-Za-z0-9_.-]+", "-", tag).strip("-").lower()


def make_confidences(num_models: int, num_examples: int, seed: int):
  rng = np.random.default_rng(seed)
  centres = rng.normal(0.0, 3.0, num_examples)
  retrained = centres + rng.normal(0.0, 1.0, (num_models, num_examples))
  unlearned = centres + 0.3 + rng.normal(0.0, 1.0, (num_models, num_examples))
  return unlearned, retrained


def time_one(num_models: int, num_examples: int, repeats: int) -> dict:
  unlearned, retrained = make_confidences(num_models, num_examples, seed=num_models)
  accs = dict(
    retain_acc_unlearned=0.95,
    retain_acc_retrained=0.96,
    test_acc_unlearned=0.85,
    test_acc_retrained=0.86,
  )
  metrics.forgetting_quality(unlearned[:, :50], retrained[:, :50], **accs)  # warm-up.
  seconds, result = [], None
  for _ in range(repeats):
    start = time.perf_counter()
    result = metrics.forgetting_quality(unlearned, retrained, **accs)
    seconds.append(time.perf_counter() - start)
  median = statistics.median(seconds)
  return {
    "num_models": num_models,
    "num_examples": num_examples,
    "repeats": repeats,
    "median_s": median,
    "min_s": min(seconds),
    "all_s": seconds,
    "ms_per_example": 1e3 * median / num_examples,
    "forget_score": result["forget_score"],
    "score": result["score"],
    "mean_eps": result["mean_eps"],
  }


def markdown_table(rows: list[dict]) -> str:
  lines = [
    "| models per group (M) | forget examples | median time (s) | min (s) | ms / example "
    "| forget score |",
    "|---:|---:|---:|---:|---:|---:|",
  ]
  for r in rows:
    lines.append(
      f"| {r['num_models']} | {r['num_examples']} | {r['median_s']:.2f} | {r['min_s']:.2f} "
      f"| {r['ms_per_example']:.2f} | {r['forget_score']:.3f} |"
    )
  return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--num-examples", type=int, default=1000)
  parser.add_argument("--models", type=int, nargs="+", default=[32, 128, 512])
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--tag", default=default_tag(), help="machine tag for the results file")
  parser.add_argument(
    "--out-dir", type=pathlib.Path, default=pathlib.Path(__file__).parent / "results"
  )
  args = parser.parse_args(argv)

  machine = machine_description()
  rows = [time_one(m, args.num_examples, args.repeats) for m in args.models]
  table = markdown_table(rows)
  print(
    f"forgetting quality, {machine['cpu_model']} ({machine['usable_cpus']} usable CPUs), "
    f"numpy {machine['numpy']}"
  )
  print(table)

  args.out_dir.mkdir(parents=True, exist_ok=True)
  path = args.out_dir / f"forgetting_quality_{args.tag}.json"
  payload = {
    "benchmark": "forgetting_quality",
    "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
    "data": "c_i ~ N(0, 3); retrained c_i + N(0, 1); unlearned c_i + 0.3 + N(0, 1)",
    "machine": machine,
    "results": rows,
    "table_markdown": table,
  }
  tmp = path.with_suffix(".json.tmp")
  tmp.write_text(json.dumps(payload, indent=2) + "\n")
  tmp.replace(path)
  print(f"wrote {path}")


if __name__ == "__main__":
  main()
