"""Examples/second of one training step, and N vmapped seeds vs N sequential runs.

  python benchmarks/train_throughput.py [--quick]

Prints Markdown tables and saves them with a machine description to
benchmarks/results/train_throughput_<tag>.json. Timings: warm-up (compile) excluded, median of
repeated timed runs; expect ±50 % run to run on shared 2-core machines.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import socket
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp

from unlearn_jax import train as T
from unlearn_jax.models import build_model, count_params

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
  return {"platform": platform.platform(), "processor": platform.processor(),
          "cpu_count": __import__("os").cpu_count(), "python": platform.python_version(),
          "jax": jax.__version__, "backend": jax.default_backend(),
          "devices": [str(d) for d in jax.devices()],
          "device_kind": jax.devices()[0].device_kind,
          "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def time_steps(state, x, y, *, batch_size, steps, repeats, model_axis="vmap"):
  """Median seconds of `steps` train steps (one compiled program per step), after warm-up."""
  state = jax.tree_util.tree_map(jnp.copy, state)  # the step donates its input
  key = jax.random.PRNGKey(1)
  n = T.num_models(state)
  key = key if n is None else jax.random.split(key, n)
  step = T._compiled_epoch_step(T.train_step, batch_size, n is not None, None,
                                T.resolve_model_axis(model_axis))
  perm = T.epoch_permutations(key, 0, n=x.shape[0], stacked=n is not None)
  state, _ = step(state, x, y, perm, 0)  # compile
  jax.block_until_ready(state)
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    for i in range(steps):
      state, m = step(state, x, y, perm, i % (x.shape[0] // batch_size))
    jax.block_until_ready((state, m))
    times.append((time.perf_counter() - t) / steps)
  return statistics.median(times)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--quick", action="store_true", help="fewer steps and repeats")
  parser.add_argument("--tag", default=None, help="results file tag (default: host/backend)")
  args = parser.parse_args()
  steps, repeats = (3, 3) if args.quick else (10, 5)
  batch, image = 128, (32, 32, 3)
  x = jax.random.normal(jax.random.PRNGKey(0), (batch * 4, *image))
  y = jax.random.randint(jax.random.PRNGKey(1), (batch * 4,), 0, 10)
  rows = []
  print("| model | width | params | step (ms), batch 128 | examples/s |")
  print("|---|---|---|---|---|")
  for name, width in [("cnn", 1.0), ("cnn", 4.0), ("preact_resnet18", 0.125),
                      ("preact_resnet18", 0.25)]:
    model = build_model(name, 10, width=width)
    tx = T.make_optimizer(learning_rate=0.1, total_steps=1000, weight_decay=5e-4)
    state = T.create_train_state(model, tx, jax.random.PRNGKey(0), image)
    sec = time_steps(state, x, y, batch_size=batch, steps=steps, repeats=repeats)
    row = {"model": name, "width": width, "params": count_params(state.params),
           "step_ms": 1e3 * sec, "examples_per_s": batch / sec}
    rows.append(row)
    print(f"| {name} | {width} | {row['params']:,} | {row['step_ms']:.1f} | "
          f"{row['examples_per_s']:.0f} |", flush=True)

  seeds_rows = []
  n_models = 8
  print(f"\n| model | N={n_models} seeds as | step (ms) | examples/s (all models) | "
        "speed-up vs sequential |")
  print("|---|---|---|---|---|")
  for name, width in [("cnn", 1.0), ("mlp", 1.0)]:
    model = build_model(name, 10, width=width)
    tx = T.make_optimizer(learning_rate=0.1, total_steps=1000, weight_decay=5e-4)
    single = T.create_train_state(model, tx, jax.random.PRNGKey(0), image)
    seq = n_models * time_steps(single, x, y, batch_size=batch, steps=steps, repeats=repeats)
    stacked = T.create_train_state(model, tx, jax.random.split(jax.random.PRNGKey(0), n_models),
                                   image)
    results = {"sequential": seq}
    for axis in ("vmap", "unrolled"):
      results[axis] = time_steps(stacked, x, y, batch_size=batch, steps=steps, repeats=repeats,
                                 model_axis=axis)
    for how, sec in results.items():
      row = {"model": name, "width": width, "num_models": n_models, "how": how,
             "step_ms": 1e3 * sec, "examples_per_s": n_models * batch / sec,
             "speedup_vs_sequential": seq / sec}
      seeds_rows.append(row)
      print(f"| {name} | {how} | {row['step_ms']:.1f} | {row['examples_per_s']:.0f} | "
            f"{row['speedup_vs_sequential']:.2f}x |", flush=True)

  info = machine()
  tag = args.tag or f"{socket.gethostname()}-{info['backend']}"
  RESULTS.mkdir(parents=True, exist_ok=True)
  out = RESULTS / f"train_throughput_{tag}.json"
  out.write_text(json.dumps({"machine": info, "batch_size": batch, "image_shape": image,
                             "steps": steps, "repeats": repeats, "single_step": rows,
                             "seeds": seeds_rows}, indent=2) + "\n")
  print(f"\nsaved {out}")


if __name__ == "__main__":
  main()
