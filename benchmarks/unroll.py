"""Steps/second of the lockstep SGD unroll (`unlearn_jax/unroll.py`): scan vs a Python loop.

  python benchmarks/unroll.py [--quick] [--tag NAME] [--cases mlp,cnn] [--repeats 3]

For an MLP (MNIST-1D shape 1x40x1, 256x256, BatchNorm) and the small CNN (28x28x1, width 0.5,
BatchNorm), one lockstep step = M and M' each take an SGD step (momentum 0.9, wd 5e-4) on a
batch of 32, plus the per-step scalars (||w_t - w_0||, ||w_t - w'_t||, the single-gradient
verification errors). Drivers:
  loop     a Python loop over the jitted step (`Unroll.step`, carry donated): the baseline
  scan     the whole unroll as one program (`drive(..., driver="scan")`: an outer scan over
           chunks of K = 8 steps, an inner scan over the steps)
  chunked  a Python loop over a jitted chunk of K = 8 steps whose inner scan is fully unrolled
           (`driver="python"`, `inner_unroll=True`): what `60-platform.md` suggests for conv nets
in each recording mode (`scalars`, `every` K = 8, `full`), σ off. Timings: compile excluded
(recorded), median of the repeats; steps/s = T / seconds, ratio = scan (or chunked) steps/s over
loop steps/s. Peak memory of the full-trajectory mode: XLA's compiled memory analysis of the scan
program (arguments + outputs + temporaries) beside the [T, P] trajectory's bytes. Results:
benchmarks/results/unroll_<tag>.json and .md with the machine and the load averages.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from unlearn_jax import unroll as U  # noqa: E402
from unlearn_jax.models import build_model, count_params  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import load_average, cpu_model  # noqa: E402  (the scripts beside this one)

RESULTS = Path(__file__).resolve().parent / "results"
K, BATCH = 8, 32
CASES = {  # key -> (label, model, width, HWC, steps T)
    "mlp": ("MLP 256x256, 1x40x1", "mlp", 1.0, (1, 40, 1), 128),
    "cnn": ("CNN w0.5, 28x28x1", "cnn", 0.5, (28, 28, 1), 32),
}
MODES = ("scalars", "every", "full")
DRIVERS = ("loop", "scan", "chunked")


def setup(case: str, steps: int):
  _, name, width, hwc, _ = CASES[case]
  model = build_model(name, 10, width=width, norm="batch")
  rng = np.random.default_rng(0)
  n = steps * BATCH
  x = jnp.asarray(rng.normal(size=(n, *hwc)), jnp.float32)
  y = jnp.asarray(rng.integers(0, 10, n), jnp.int32)
  params, ms = jax.jit(model.init)(jax.random.PRNGKey(0), x[:1])
  idx = jnp.arange(n, dtype=jnp.int32).reshape(steps, BATCH)
  forget = jnp.zeros(steps, bool).at[0].set(True)
  st = dict(idx=idx, forget=forget, lr=jnp.full((steps,), 0.05, jnp.float32))
  return model, params, ms, st, dict(x=x, y=y)


def make(model, mode: str, driver: str):
  return U.make_unroll(model.apply, momentum=0.9, weight_decay=5e-4, record=mode, every=K,
                       checkpoint_every=K, inner_unroll=True if driver == "chunked" else 1)


def runner(model, params, ms, steps, data, mode: str, driver: str):
  """A function running the whole unroll once and waiting for it."""
  u = make(model, mode, driver)
  if driver in ("scan", "chunked"):
    drv = "scan" if driver == "scan" else "python"
    return lambda: jax.block_until_ready(U.drive(u, params, ms, steps, data, driver=drv))
  init = jax.jit(u.init)
  step = jax.jit(u.step, donate_argnums=(0,))
  T = int(steps["forget"].shape[0])

  def run():
    carry, _ = init(params, ms, steps, data, 0.0)
    recs = []
    for t in range(T):
      carry, r = step(carry, {k: steps[k][t] for k in ("idx", "forget", "lr")}, data)
      recs.append(r)
    return jax.block_until_ready((carry, recs))

  return run


def timed(fn, repeats: int) -> dict:
  t = time.perf_counter()
  fn()
  first = time.perf_counter() - t
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return {"first_s": first, "median_s": statistics.median(times), "times_s": times}


def memory(model, params, ms, steps, data) -> dict:
  u = make(model, "full", "scan")
  compiled = jax.jit(u.run).lower(params, ms, steps, data, 0.0).compile()
  p = count_params(params)
  T = int(steps["forget"].shape[0])
  out = {"params": p, "trajectory_bytes": 2 * T * p * 4}  # w and w_retrain, float32
  try:
    m = compiled.memory_analysis()
    out.update(argument_bytes=int(m.argument_size_in_bytes), output_bytes=int(m.output_size_in_bytes),
               temp_bytes=int(m.temp_size_in_bytes))
    out["peak_bytes"] = out["argument_bytes"] + out["output_bytes"] + out["temp_bytes"]
  except Exception as e:  # noqa: BLE001 - not every backend reports it
    out["memory_analysis_error"] = repr(e)
  return out


def to_markdown(result: dict) -> str:
  lines = [f"Machine: {result['cpu_model']} ({result['cpu_count']} cores, "
           f"{result['backend']}), jax {result['jax']}; load average {result['load_average_start']}"
           f" before, {result['load_average_end']} after; {result['date']}.", "",
           "| net | steps T | record | loop steps/s | scan steps/s | chunked steps/s | "
           "scan / loop | chunked / loop | compile s loop / scan / chunked |",
           "|---|---|---|---|---|---|---|---|---|"]
  for case, c in result["cases"].items():
    for mode in MODES:
      r = c["modes"][mode]
      sps = {d: c["steps"] / r[d]["median_s"] for d in DRIVERS}
      lines.append(f"| {c['label']} ({c['params']} params) | {c['steps']} | {mode} | "
                   f"{sps['loop']:.0f} | {sps['scan']:.0f} | {sps['chunked']:.0f} | "
                   f"{sps['scan'] / sps['loop']:.2f} | {sps['chunked'] / sps['loop']:.2f} | "
                   + " / ".join(f"{r[d]['first_s'] - r[d]['median_s']:.1f}" for d in DRIVERS)
                   + " |")
  lines += ["", "| net | full trajectory [2, T, P] MB | compiled scan program: args + outputs + "
            "temporaries MB |", "|---|---|---|"]
  for case, c in result["cases"].items():
    m = c["memory_full"]
    peak = f"{m['peak_bytes'] / 2**20:.1f}" if "peak_bytes" in m else m.get(
        "memory_analysis_error", "—")
    lines.append(f"| {c['label']} | {m['trajectory_bytes'] / 2**20:.1f} | {peak} |")
  return "\n".join(lines) + "\n"


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--quick", action="store_true", help="16 steps, 1 repeat (a smoke run)")
  ap.add_argument("--tag", default="cpu-2core")
  ap.add_argument("--cases", default="mlp,cnn")
  ap.add_argument("--repeats", type=int, default=3)
  args = ap.parse_args(argv)
  result = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": "python benchmarks/unroll.py " + " ".join(argv or sys.argv[1:]),
            "cpu_model": cpu_model(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "jax": jax.__version__,
            "backend": jax.default_backend(), "load_average_start": load_average(), "cases": {}}
  for case in args.cases.split(","):
    label, _, _, _, steps = CASES[case]
    steps = 16 if args.quick else steps
    model, params, ms, st, data = setup(case, steps)
    c = {"label": label, "steps": steps, "params": count_params(params), "modes": {}}
    for mode in MODES:
      c["modes"][mode] = {}
      for driver in DRIVERS:
        r = timed(runner(model, params, ms, st, data, mode, driver),
                  1 if args.quick else args.repeats)
        c["modes"][mode][driver] = r
        print(f"{case} {mode:7s} {driver:7s} {steps / r['median_s']:8.1f} steps/s "
              f"(first call {r['first_s']:.1f} s)", flush=True)
    c["memory_full"] = memory(model, params, ms, st, data)
    result["cases"][case] = c
  result["load_average_end"] = load_average()
  md = to_markdown(result)
  print(md)
  if not args.quick:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"unroll_{args.tag}.json").write_text(json.dumps(result, indent=1))
    (RESULTS / f"unroll_{args.tag}.md").write_text(md)
  return 0


if __name__ == "__main__":
  sys.exit(main())
