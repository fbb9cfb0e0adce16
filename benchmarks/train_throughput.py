"""Training throughput of ours against what users would run instead (PyTorch), 1 and N models.

  python benchmarks/train_throughput.py [--quick] [--tag NAME] [--cases a,b] [--models 1,8,32]

Two Markdown tables, saved with a machine description (and the load averages before and after
every case) to benchmarks/results/train_throughput_<tag>.json:

1. One model, one SGD step (momentum 0.9, coupled weight decay, cosine schedule, cross-entropy,
   BatchNorm in training mode, batch gathered from on-device data): ours (one jitted step) beside
   the same net in PyTorch on CPU, eager and `torch.compile`, with the ratios ours/torch in
   examples/s. The PyTorch twins are `benchmarks/torch_nets.py` (parameter counts asserted equal).
2. N models: ours as one compiled program over a stacked model axis (`vmap` and `unrolled`,
   see `unlearn_jax.train.resolve_model_axis`) beside PyTorch training its N seeds one after
   another, as every peer does (so its models/s does not depend on N: N x the one-model step).

Cases: the embedded default (MNIST-1D as 1x40x1 images, MLP 256x256, batch 64, no weight
decay), the previous default (mnist5k 28x28x1, CNN width 0.5, batch 64, wd 5e-4) and the older
32x32x3 shapes at batch 128. Inputs are random (throughput does not depend on the values).

PyTorch is a benchmark-only extra (`pip install -e ".[bench]"`); without it the torch columns are
skipped with a note. Timings: warm-up (compile) excluded but recorded; each repeat runs enough
steps for about `--target-s` seconds; the median of the repeats. Expect +-50 % run to run on
shared 2-core machines, and do not record results while the load average is above ~1.3 there.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import socket
import statistics
import sys
import time
from pathlib import Path

import jax
import numpy as np

from unlearn_jax import train as T
from unlearn_jax.models import build_model, count_params

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import load_average, cpu_model  # noqa: E402  (the scripts beside this one)

RESULTS = Path(__file__).resolve().parent / "results"
EPOCH_EXAMPLES = 4000  # models/s = N models finishing an epoch of this many examples per second
LEARNING_RATE, TOTAL_STEPS = 0.1, 1000


@dataclasses.dataclass(frozen=True)
class Case:
  """One net at one input shape and batch size, with its recipe's weight decay."""
  key: str
  label: str
  model: str
  width: float
  image: tuple  # H, W, C
  batch: int
  weight_decay: float
  seeds: tuple = ()   # N values of the N-models table (empty: not in it)
  torch: bool = True  # has a PyTorch twin
  norm: str = "batch"


CASES = (
    Case("mnist1d_mlp", "MNIST-1D MLP 256x256 (default)", "mlp", 1.0, (1, 40, 1), 64, 0.0,
         seeds=(1, 8, 32)),
    Case("mnist5k_cnn", "mnist5k CNN w0.5 (old default)", "cnn", 0.5, (28, 28, 1), 64, 5e-4,
         seeds=(1, 8, 32)),
    Case("cnn1_32", "CNN w1 32x32x3", "cnn", 1.0, (32, 32, 3), 128, 5e-4, seeds=(1, 8)),
    Case("cnn4_32", "CNN w4 32x32x3", "cnn", 4.0, (32, 32, 3), 128, 5e-4),
    Case("mlp1_32", "MLP w1 32x32x3", "mlp", 1.0, (32, 32, 3), 128, 5e-4, seeds=(1, 8)),
    Case("preact_resnet18_0125", "PreAct ResNet-18 w0.125 32x32x3", "preact_resnet18", 0.125, (32, 32, 3), 128, 5e-4,
         torch=False),
    Case("preact_resnet18_025", "PreAct ResNet-18 w0.25 32x32x3", "preact_resnet18", 0.25, (32, 32, 3), 128, 5e-4,
         torch=False),
)


def machine(torch_mod=None) -> dict:
  info = {"platform": platform.platform(), "processor": platform.processor(),
          "cpu_model": cpu_model(), "cpu_count": os.cpu_count(),
          "python": platform.python_version(), "jax": jax.__version__,
          "backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()],
          "device_kind": jax.devices()[0].device_kind,
          "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
  if torch_mod is not None:
    info.update(torch=torch_mod.__version__, torch_cuda_build=torch_mod.version.cuda,
                torch_cuda_available=torch_mod.cuda.is_available(),
                torch_threads=torch_mod.get_num_threads())
  return info


def timed(step, sync, *, target_s: float, repeats: int, max_steps: int = 200) -> dict:
  """Warm-up seconds (compile) and median seconds per step of `step()`.

  Each of `repeats` timed runs calls `step` enough times for about `target_s` seconds (estimated
  from one call after the warm-up); `sync()` waits for the device.
  """
  t = time.perf_counter()
  step()
  sync()
  warmup = time.perf_counter() - t
  t = time.perf_counter()
  step()
  sync()
  steps = int(min(max_steps, max(1, math.ceil(target_s / (time.perf_counter() - t)))))
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    for _ in range(steps):
      step()
    sync()
    times.append((time.perf_counter() - t) / steps)
  return {"step_s": statistics.median(times), "warmup_s": warmup, "steps": steps,
          "repeats": repeats}


def data(case: Case, n_batches: int = 4):
  x = jax.random.normal(jax.random.PRNGKey(0), (case.batch * n_batches, *case.image))
  y = jax.random.randint(jax.random.PRNGKey(1), (case.batch * n_batches,), 0, 10)
  return x, y


def time_ours(case: Case, n_models, *, model_axis="vmap", **timing) -> dict:
  """Our jitted train step (`_compiled_epoch_step`, as `fit` runs it): one model if `n_models`
  is None, else a stacked state of N models mapped with `model_axis`."""
  model = build_model(case.model, 10, width=case.width, norm=case.norm)
  tx = T.make_optimizer(learning_rate=LEARNING_RATE, total_steps=TOTAL_STEPS,
                        weight_decay=case.weight_decay)
  key = jax.random.PRNGKey(0) if n_models is None else jax.random.split(jax.random.PRNGKey(0),
                                                                           n_models)
  box = {"state": T.create_train_state(model, tx, key, case.image), "i": 0}
  params = count_params(box["state"].params) // (n_models or 1)
  x, y = data(case)
  stacked = n_models is not None
  step_fn = T._compiled_epoch_step(T.train_step, case.batch, stacked, None,
                                   T.resolve_model_axis(model_axis))
  perm = T.epoch_permutations(jax.random.split(jax.random.PRNGKey(1), n_models) if stacked
                              else jax.random.PRNGKey(1), 0, n=x.shape[0], stacked=stacked)
  nb = x.shape[0] // case.batch

  def step():
    box["state"], box["metrics"] = step_fn(box["state"], x, y, perm, box["i"] % nb)
    box["i"] += 1

  out = timed(step, lambda: jax.block_until_ready((box["state"], box["metrics"])), **timing)
  return {**out, "params": params}


def time_torch(torch, tn, case: Case, *, compile_: bool, **timing) -> dict:
  """The PyTorch twin (NCHW), eager or `torch.compile`d (forward and backward), one model."""
  torch.manual_seed(0)
  net = tn.build(case.model, case.image, width=case.width, norm=case.norm)
  params = tn.count_params(net)
  opt, sched = tn.make_optimizer(net, learning_rate=LEARNING_RATE, total_steps=TOTAL_STEPS,
                                 weight_decay=case.weight_decay)
  x, y = data(case)
  x = torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy())
  y = torch.from_numpy(np.asarray(y).astype(np.int64))
  perm = torch.randperm(x.shape[0])
  nb = x.shape[0] // case.batch
  module = torch.compile(net) if compile_ else net
  box = {"i": 0}

  def step():
    i = box["i"] % nb
    tn.train_step(module, opt, sched, x, y, perm[i * case.batch:(i + 1) * case.batch])
    box["i"] += 1

  out = timed(step, lambda: None, **timing)
  return {**out, "params": params}


def import_torch(threads: int):
  """(torch, torch_nets) or (None, reason)."""
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    return None, f"PyTorch not installed ({e}); pip install -e \".[bench]\" for the torch columns"
  sys.path.insert(0, str(Path(__file__).resolve().parent))
  import torch_nets  # pylint: disable=import-outside-toplevel
  torch.set_num_threads(threads)
  return torch, torch_nets


def fmt(v, spec=".0f", none="–"):
  return none if v is None else format(v, spec)


def fx(v):
  """A ratio as '1.23x', or '–'."""
  return "–" if v is None else f"{v:.2f}x"


def ratio(a, b):
  return None if a is None or b is None else a / b


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="smoke run: short repeats")
  parser.add_argument("--tag", default=None, help="results file tag (default: host-backend)")
  parser.add_argument("--out", default=None, help="results file (default: results/..._<tag>.json)")
  parser.add_argument("--cases", default=None,
                      help=f"comma-separated subset of {','.join(c.key for c in CASES)}")
  parser.add_argument("--models", default=None,
                      help="comma-separated N values for the N-models table (default per case)")
  parser.add_argument("--torch-threads", type=int, default=os.cpu_count(),
                      help="torch.set_num_threads (default: the core count)")
  parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch columns")
  parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
  parser.add_argument("--no-unrolled", action="store_true", help="skip model_axis='unrolled'")
  parser.add_argument("--settle-s", type=float, default=0.0,
                      help="after the runs, wait this long and record the load again (our own "
                           "load decays; what remains is other jobs')")
  parser.add_argument("--target-s", type=float, default=None,
                      help="seconds per timed repeat (default 1.0, quick 0.2)")
  args = parser.parse_args()
  timing = dict(target_s=args.target_s or (0.2 if args.quick else 1.0),
                repeats=2 if args.quick else 5)
  cases = CASES
  if args.cases:
    wanted = args.cases.split(",")
    unknown = set(wanted) - {c.key for c in CASES}
    if unknown:
      parser.error(f"unknown case(s) {sorted(unknown)}; choose from "
                   f"{', '.join(c.key for c in CASES)}")
    cases = tuple(c for c in CASES if c.key in wanted)
  models_override = tuple(int(n) for n in args.models.split(",")) if args.models else None

  torch, tn = (None, "skipped (--no-torch)") if args.no_torch else import_torch(args.torch_threads)
  torch_note = tn if torch is None else None
  if torch_note:
    print(f"note: {torch_note}", flush=True)
  load_start = load_average()
  print(f"load average at start: {load_start} on {os.cpu_count()} cores"
        + (" -- under load, timings are not trustworthy"
           if load_start and load_start[0] > 0.65 * (os.cpu_count() or 1) else ""), flush=True)

  # 1. One model: ours vs PyTorch eager and torch.compile.
  print("\n| case | params | batch | ours step (ms) | ours ex/s | torch eager ex/s | "
        "torch.compile ex/s | ours/eager | ours/compile |")
  print("|---|---|---|---|---|---|---|---|---|")
  single = []
  for case in cases:
    row = {"case": case.key, "label": case.label, "model": case.model, "width": case.width,
           "image_shape": case.image, "batch_size": case.batch, "weight_decay": case.weight_decay,
           "load_before": load_average()}
    ours = time_ours(case, None, **timing)
    row.update(params=ours["params"], ours=ours, ours_examples_per_s=case.batch / ours["step_s"])
    for kind in ("eager", "compile"):
      res, eps = None, None
      if torch is None or not case.torch:
        res = {"skipped": torch_note or "no PyTorch twin"}
      elif kind == "compile" and args.no_compile:
        res = {"skipped": "--no-compile"}
      else:
        try:
          time.sleep(0.5)  # XLA's worker threads go idle first (else torch's 2 threads stall)
          res = time_torch(torch, tn, case, compile_=kind == "compile", **timing)
          assert res["params"] == ours["params"], (case.key, res["params"], ours["params"])
          eps = case.batch / res["step_s"]
        except AssertionError:
          raise
        except Exception as e:  # torch.compile can fail on CPU (no compiler, ...): record why
          res = {"failed": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"}
        time.sleep(0.3)  # let torch's OpenMP threads stop spinning before ours run again
      row[f"torch_{kind}"], row[f"torch_{kind}_examples_per_s"] = res, eps
      row[f"ours_over_torch_{kind}"] = ratio(row["ours_examples_per_s"], eps)
    row["load_after"] = load_average()
    single.append(row)
    print(f"| {case.label} | {row['params']:,} | {case.batch} | {1e3 * ours['step_s']:.2f} | "
          f"{row['ours_examples_per_s']:.0f} | {fmt(row['torch_eager_examples_per_s'])} | "
          f"{fmt(row['torch_compile_examples_per_s'])} | "
          f"{fx(row['ours_over_torch_eager'])} | {fx(row['ours_over_torch_compile'])} |",
          flush=True)
  for row in single:
    for kind in ("eager", "compile"):
      why = row[f"torch_{kind}"].get("failed")
      if why:
        print(f"note: torch {kind} failed on {row['case']}: {why}")
    comp = row["torch_compile"]
    if "warmup_s" in comp:
      row["torch_compile_warmup_s"] = comp["warmup_s"]

  # 2. N models: ours in one program vs PyTorch sequential.
  by_key = {r["case"]: r for r in single}
  print(f"\nmodels/s = N models each finishing one epoch of {EPOCH_EXAMPLES:,} examples "
        "(steps = 4,000 // batch), per second; PyTorch runs its N seeds sequentially (= its "
        "one-model rate); 'ours best/seq' = ours best over N x our one-model step.\n")
  print("| case | N | ours vmap models/s | ours unrolled models/s | ours best/seq | "
        "torch eager models/s | torch.compile models/s | ours best / torch best | "
        "compile s (vmap, unrolled) |")
  print("|---|---|---|---|---|---|---|---|---|")
  seeds = []
  for case in cases:
    ns = models_override or case.seeds
    if not case.seeds or case.key not in by_key:
      continue
    base = by_key[case.key]
    spe = EPOCH_EXAMPLES // case.batch
    mps = lambda n, step_s: n / (step_s * spe)
    seq = mps(1, base["ours"]["step_s"])
    torch_mps = {k: (None if base[f"torch_{k}_examples_per_s"] is None
                     else mps(1, base[f"torch_{k}"]["step_s"])) for k in ("eager", "compile")}
    for n in ns:
      row = {"case": case.key, "num_models": n, "steps_per_epoch": spe,
             "load_before": load_average(), "ours_sequential_models_per_s": seq}
      if n == 1:
        row.update(vmap=base["ours"], unrolled=base["ours"])
      else:
        row["vmap"] = time_ours(case, n, model_axis="vmap", **timing)
        row["unrolled"] = (None if args.no_unrolled
                           else time_ours(case, n, model_axis="unrolled", **timing))
      for how in ("vmap", "unrolled"):
        row[f"{how}_models_per_s"] = None if row[how] is None else mps(n, row[how]["step_s"])
        row[f"{how}_examples_per_s"] = (None if row[how] is None
                                        else n * case.batch / row[how]["step_s"])
      best = max(v for v in (row["vmap_models_per_s"], row["unrolled_models_per_s"]) if v)
      torch_best = max((v for v in torch_mps.values() if v), default=None)
      row.update(ours_best_models_per_s=best, ours_best_over_sequential=best / seq,
                 torch_eager_models_per_s=torch_mps["eager"],
                 torch_compile_models_per_s=torch_mps["compile"],
                 torch_best_models_per_s=torch_best,
                 ours_best_over_torch_best=ratio(best, torch_best),
                 load_after=load_average())
      seeds.append(row)
      warm = ", ".join(fmt(None if row[h] is None else row[h]["warmup_s"], ".1f")
                       for h in ("vmap", "unrolled"))
      print(f"| {case.label} | {n} | {row['vmap_models_per_s']:.2f} | "
            f"{fmt(row['unrolled_models_per_s'], '.2f')} | {best / seq:.2f}x | "
            f"{fmt(torch_mps['eager'], '.2f')} | {fmt(torch_mps['compile'], '.2f')} | "
            f"{fx(row['ours_best_over_torch_best'])} | {warm} |", flush=True)

  info = machine(torch)
  load_end = load_average()
  print(f"\nload average at end: {load_end}")
  load_settled = None
  if args.settle_s > 0:
    time.sleep(args.settle_s)
    load_settled = load_average()
    print(f"load average {args.settle_s:.0f} s after the runs: {load_settled}")
  tag = args.tag or f"{socket.gethostname()}-{info['backend']}"
  out = Path(args.out) if args.out else RESULTS / f"train_throughput_{tag}.json"
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps({
      "machine": info, "load_average_start": load_start, "load_average_end": load_end,
      "load_average_settled": load_settled, "settle_s": args.settle_s,
      "quick": args.quick, "timing": timing, "epoch_examples": EPOCH_EXAMPLES,
      "models_per_s": f"N / (step seconds x ({EPOCH_EXAMPLES} // batch)): models finishing one "
                      f"epoch of {EPOCH_EXAMPLES} examples per second; torch runs N sequentially",
      "recipe": {"optimizer": "SGD momentum 0.9, coupled weight decay, cosine schedule",
                 "learning_rate": LEARNING_RATE, "total_steps": TOTAL_STEPS,
                 "loss": "cross-entropy", "norm": "batch (training mode)"},
      "torch_note": torch_note, "single_model": single, "n_models": seeds}, indent=2) + "\n")
  print(f"saved {out}")


if __name__ == "__main__":
  main()
