"""K half-data shadow models on MNIST-1D: ours in one program, ours in a loop, PyTorch in a loop.

  python benchmarks/shadows.py [--models 64 128 256] [--epochs 40] [--repeats 1] [--skip-torch]
                               [--out benchmarks/results/shadows_cpu-2core.md]

Per-example evaluations (Feldman-Zhang memorisation, LiRA / U-LiRA, KLOM) need K models that each
train on their own half of the training set. The design is `unlearn_jax.data.shadows.
random_subsets` (complement pairs: models 2i and 2i+1 take a random half and its complement, so
every example is "in" exactly K/2 models); the recipe is the main job's default
(`experiments/configs/unlearn.py` with no argument: MNIST-1D, MLP 256x256 with BatchNorm, Flax
init, its epochs / batch size / learning rate / momentum / weight decay / cosine schedule, read
from the config, not restated here). Every model trains on m = n // 2 rows of the n training rows
(the main job's train split, validation carved off), m // batch steps per epoch.

Three ways to train the K models:
  (a) ours, one program: one stacked state of K models, `train.fit(..., subsets=subsets,
      model_axis="vmap")`, the mnist1d preset's model axis (docs/platform.md: for conv nets on
      CPU `unrolled` is faster; for this MLP `unrolled` steps ~1.3x faster at N=32 on 2 idle
      cores but its compile time grows with K, 17 s at N=32, so vmap for K in the hundreds);
  (b) ours, a Python loop of K single-model `train.fit` calls on `x[subsets[k]]` (the same keys
      as (a), so the same models up to float reassociation; one compiled program reused by all);
  (c) PyTorch, the twin MLP (`benchmarks/torch_nets.py`, equal parameter count, re-initialised as
      Flax initialises: LeCun-normal truncated kernels, zero biases) trained K times one after
      another on the same subsets: same batch size, epochs, SGD momentum, coupled weight decay and
      per-step cosine schedule (`torch_nets.make_optimizer`, as `train.make_optimizer`),
      BatchNorm momentum 0.1 / eps 1e-5, a fresh `randperm` of each model's rows every epoch,
      last partial batch dropped; `torch.set_num_threads` left at its default (recorded).
Then the Feldman-Zhang step (ours only): logits of the K models of (a) on all n training rows
(`train.predict`, vmap) and `unlearn_jax.metrics.memorization.feldman_zhang`.

Timing: per (K, way), a warm-up `fit(epochs=1)` on the same shapes (compiles every program;
for (b) and (c) one model) and then `--repeats` timed runs of all K models (state creation +
E epochs, waited for with `block_until_ready`), median taken. run = the timed run; compile =
warm-up wall minus one epoch of the warm-up's models in the run (run / E; run / (E K) for
(b) and (c)); total = compile + run, what a fresh process
waits. The persistent XLA compilation cache is disabled, so compile is a cold compile (the main
job keeps one: its reruns compile faster). An untimed pre-warm on other shapes (2 models of 2
batches each) first pays JAX's and torch's one-time first-use costs, which would otherwise fall
on whichever way runs first; all compiled programs are dropped before each K. Test accuracy (MNIST-1D test split, inference mode,
mean and std over the K models) shows the three ways train equally well. Machine, load averages
(before / after every K) and the exact command line go into `--out` (Markdown) and the raw
numbers into the .json beside it. On a shared 2-core machine do not record a full run while the
1-min load is above ~1.3 (expect +-50 % run to run even then).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))  # the repository root, for experiments.configs

from machine import cpu_model, load_average  # noqa: E402  (the scripts beside this one)

from experiments.configs.unlearn import get_config  # noqa: E402
from unlearn_jax import train as T  # noqa: E402
from unlearn_jax.data.datasets import load_dataset  # noqa: E402
from unlearn_jax.data.shadows import random_subsets  # noqa: E402
from unlearn_jax.metrics.memorization import feldman_zhang  # noqa: E402
from unlearn_jax.models import build_model_from_config, count_params  # noqa: E402

RESULTS = HERE / "results"
DEFAULT_OUT = RESULTS / "shadows_cpu-2core.md"
MODEL_AXIS = "vmap"  # the mnist1d preset's; compiles in time independent of K (see docstring)
MODEL_CHUNK = [0]    # (a)'s `fit(model_chunk=...)`, set by --model-chunk
METHODS = {"a": "ours, one program (vmap)", "b": "ours, loop of single fits",
           "c": "PyTorch, sequential"}


def default_config():
  """The main job's default config (`experiments/configs/unlearn.py`, no argument)."""
  return get_config()


def load_data(cfg):
  d = cfg.data
  ds = load_dataset(d.name, data_dir=d.data_dir, validation_fraction=d.validation_fraction,
                    test_fraction=d.test_fraction, split_seed=d.split_seed,
                    max_train_examples=d.max_train_examples)
  return ds


def block(tree):
  return jax.block_until_ready(tree)


def settle():
  """Let the other framework's worker threads go idle (XLA and OpenMP spin a little)."""
  time.sleep(0.5)


class Ours:
  """(a) and (b): the model, one optax transformation shared by every state (so every fit
  reuses the same compiled programs), the data on device."""

  def __init__(self, cfg, ds, epochs: int, m: int):
    t = cfg.train
    self.cfg, self.epochs, self.batch = cfg, epochs, t.batch_size
    self.steps = T.check_batch_size(t.batch_size, m)
    self.model = build_model_from_config(cfg.model.to_dict(), ds.num_classes)
    self.tx = T.make_optimizer(learning_rate=t.learning_rate, total_steps=epochs * self.steps,
                               momentum=t.momentum, weight_decay=t.weight_decay,
                               schedule=t.schedule, final_lr_fraction=t.final_lr_fraction,
                               epoch_steps=self.steps)
    self.image_shape = ds.image_shape
    self.x, self.y = jnp.asarray(ds.train.x), jnp.asarray(ds.train.y)
    self.x_test, self.y_test = jnp.asarray(ds.test.x), jnp.asarray(ds.test.y)
    self.eval_batch = t.eval_batch_size

  @staticmethod
  def keys(k: int, seed: int):
    init = jax.random.split(jax.random.PRNGKey(seed), k)
    data = jax.random.split(jax.random.PRNGKey(seed + 1), k)
    return init, data

  def stacked(self, subsets, *, epochs: int, seed: int):
    """(a): all K models in one stacked state, each on its own rows."""
    init, data = self.keys(len(subsets), seed)
    state = T.create_train_state(self.model, self.tx, init, self.image_shape)
    return block(T.fit(state, self.x, self.y, key=data, epochs=epochs, batch_size=self.batch,
                       model_axis=MODEL_AXIS, subsets=subsets, model_chunk=MODEL_CHUNK[0]))

  def loop(self, subsets, *, epochs: int, seed: int, count=None):
    """(b): one single-model fit per model on `x[subsets[k]]` (the same keys as (a))."""
    init, data = self.keys(len(subsets), seed)
    states = []
    for k in range(len(subsets) if count is None else count):
      rows = jnp.asarray(subsets[k])
      state = T.create_train_state(self.model, self.tx, init[k], self.image_shape)
      states.append(block(T.fit(state, self.x[rows], self.y[rows], key=data[k], epochs=epochs,
                                batch_size=self.batch)))
    return states

  def test_accuracy(self, state) -> np.ndarray:
    acc = T.evaluate(state, self.x_test, self.y_test, batch_size=self.eval_batch,
                     model_axis=MODEL_AXIS)["accuracy"]
    return np.atleast_1d(np.asarray(acc, np.float64))

  def train_predictions(self, state) -> np.ndarray:
    """correct [K, n]: model k right on training row j (inference mode)."""
    logits = T.predict(state, self.x, batch_size=self.eval_batch, model_axis=MODEL_AXIS)
    return np.asarray(jnp.argmax(logits, -1) == self.y)


class Torch:
  """(c): the twin MLP trained K times, one after another."""

  def __init__(self, torch, tn, cfg, ds, epochs: int, m: int, ours_params: int):
    t = cfg.train
    self.torch, self.tn, self.cfg, self.epochs = torch, tn, cfg, epochs
    self.batch, self.steps = t.batch_size, m // t.batch_size
    self.image_shape = ds.image_shape
    nchw = lambda a: torch.from_numpy(np.ascontiguousarray(np.asarray(a).transpose(0, 3, 1, 2)))
    self.x, self.y = nchw(ds.train.x), torch.from_numpy(np.asarray(ds.train.y, np.int64))
    self.x_test = nchw(ds.test.x)
    self.y_test = torch.from_numpy(np.asarray(ds.test.y, np.int64))
    if cfg.model.init != "flax":
      raise SystemExit(f"the torch twin here copies Flax's init; the config's init is "
                       f"{cfg.model.init!r}")
    params = tn.count_params(self.net(0))
    assert params == ours_params, (params, ours_params)

  def net(self, seed: int):
    """The twin, initialised as Flax initialises Dense (LeCun-normal, truncated at 2 std; zero
    bias); BatchNorm starts at scale 1, bias 0 in both."""
    torch, m = self.torch, self.cfg.model
    torch.manual_seed(seed)
    net = self.tn.build(m.name, self.image_shape, width=m.width, norm=m.norm)
    with torch.no_grad():
      for layer in net.modules():
        if isinstance(layer, torch.nn.Linear):
          std = math.sqrt(1.0 / layer.in_features) / .87962566103423978
          torch.nn.init.trunc_normal_(layer.weight, std=std, a=-2 * std, b=2 * std)
          torch.nn.init.zeros_(layer.bias)
    return net

  def loop(self, subsets, *, epochs: int, seed: int, count=None):
    t, torch = self.cfg.train, self.torch
    nets = []
    for k in range(len(subsets) if count is None else count):
      net = self.net(seed * 100_003 + k)
      opt, sched = self.tn.make_optimizer(net, learning_rate=t.learning_rate,
                                          total_steps=self.epochs * self.steps,
                                          weight_decay=t.weight_decay, momentum=t.momentum)
      rows = torch.from_numpy(np.asarray(subsets[k], np.int64))
      xk, yk = self.x[rows], self.y[rows]
      net.train()
      for _ in range(epochs):
        perm = torch.randperm(len(rows))
        for i in range(self.steps):
          self.tn.train_step(net, opt, sched, xk, yk, perm[i * self.batch:(i + 1) * self.batch])
      nets.append(net)
    return nets

  def test_accuracy(self, nets) -> np.ndarray:
    out = []
    with self.torch.no_grad():
      for net in nets:
        net.eval()
        out.append(float((net(self.x_test).argmax(-1) == self.y_test).double().mean()))
    return np.asarray(out)


def timed_runs(train, repeats: int):
  """Median wall of `repeats` calls of `train()`, the walls, and the last result."""
  walls, result = [], None
  for _ in range(repeats):
    t = time.perf_counter()
    result = train()
    walls.append(time.perf_counter() - t)
  return statistics.median(walls), walls, result


def measure(name, warmup, train, accuracy, *, epochs: int, repeats: int, k: int) -> dict:
  t = time.perf_counter()
  warmup()
  warm_s = time.perf_counter() - t
  run_s, walls, result = timed_runs(train, repeats)
  compile_s = max(0.0, warm_s - run_s / epochs / (k if name != "a" else 1))
  acc = accuracy(result)
  row = {"method": name, "label": METHODS[name], "warmup_s": warm_s, "compile_s": compile_s,
         "run_s": run_s, "run_walls_s": walls, "total_s": compile_s + run_s,
         "test_acc_mean": float(acc.mean()), "test_acc_std": float(acc.std()),
         "test_acc": acc.tolist()}
  return row, result


def fz_step(ours: Ours, state, keep) -> dict:
  """Predictions of the K models on all training rows + Feldman-Zhang scores; first call (with
  compiling `predict`) and a second, warm one."""
  out = {}
  for kind in ("cold", "warm"):
    t = time.perf_counter()
    scores = feldman_zhang(ours.train_predictions(state), keep)
    out[f"{kind}_s"] = time.perf_counter() - t
  s = scores["score"]
  out.update(mean_score=float(np.nanmean(s)), nan_scores=int(np.isnan(s).sum()),
             mean_stderr=float(np.nanmean(scores["stderr"])) if np.isfinite(
                 scores["stderr"]).any() else None)
  return out


def cold_caches() -> None:
  """Forget every compiled program (JAX's and `train`'s own caches), so that each K compiles as
  a fresh process would (else (b)'s one-model program, compiled at the first K, is reused)."""
  jax.clear_caches()
  for fn in (T._compiled_epoch_step, T._compiled_init, T._compiled_predict):  # pylint: disable=protected-access
    fn.cache_clear()


def prewarm(ours: Ours, tw) -> None:
  """Pay the one-time first-use costs of JAX (and torch) on other shapes (2 models of 2 batches
  each), so that no way pays them for the others; every timed program still compiles cold."""
  rows = np.arange(4 * ours.batch, dtype=np.int32).reshape(2, 2 * ours.batch)
  ours.stacked(rows, epochs=1, seed=99)
  ours.test_accuracy(ours.stacked(rows, epochs=1, seed=99))
  ours.train_predictions(ours.stacked(rows, epochs=1, seed=99))
  ours.test_accuracy(T.stack(ours.loop(rows, epochs=1, seed=99)))
  if tw is not None:
    settle()
    tw.test_accuracy(tw.loop(rows, epochs=1, seed=99))
    settle()


def import_torch():
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    return None, None, f"PyTorch not installed ({e}); pip install -e \".[bench]\""
  import torch_nets  # pylint: disable=import-outside-toplevel
  return torch, torch_nets, None


def machine(torch) -> dict:
  commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1]).stdout.strip()
  dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                         capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1]).stdout.strip()
  info = {"commit": commit + (" (uncommitted changes)" if dirty else ""),
          "platform": platform.platform(), "cpu_model": cpu_model(), "cpu_count": os.cpu_count(),
          "python": platform.python_version(), "jax": jax.__version__,
          "backend": jax.default_backend(), "device_kind": jax.devices()[0].device_kind,
          "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
  if torch is not None:
    info.update(torch=torch.__version__, torch_threads=torch.get_num_threads())
  return info


def ratio(a, b):
  return None if a is None or b is None or b == 0 else a / b


def fx(v):
  return "–" if v is None else f"{v:.2f}x"


HEADER = ("| K | method | compile s | run s | total min | models/s | speedup vs (b) | "
          "speedup vs (c) | test acc (mean ± std) |\n|---|---|---|---|---|---|---|---|---|")


def table_row(k, row, rows_k) -> str:
  b, c = rows_k.get("b"), rows_k.get("c")
  return (f"| {k} | ({row['method']}) {row['label']} | {row['compile_s']:.1f} | "
          f"{row['run_s']:.1f} | {row['total_s'] / 60:.2f} | {k / row['total_s']:.2f} | "
          f"{fx(ratio(b and b['total_s'], row['total_s']))} | "
          f"{fx(ratio(c and c['total_s'], row['total_s']))} | "
          f"{100 * row['test_acc_mean']:.1f} ± {100 * row['test_acc_std']:.1f} % |")


def main():
  cfg = default_config()
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--models", type=int, nargs="+", default=[64, 128, 256],
                      help="K values (even: complement pairs)")
  parser.add_argument("--epochs", type=int, default=cfg.train.epochs,
                      help=f"epochs per model (default: the default config's, {cfg.train.epochs})")
  parser.add_argument("--repeats", type=int, default=1, help="timed runs per (K, way); median")
  parser.add_argument("--skip-torch", action="store_true", help="skip (c)")
  parser.add_argument("--model-chunk", type=int, default=0,
                      help="(a) trains its K models this many at a time per epoch (0: all)")
  parser.add_argument("--seed", type=int, default=0, help="seed of the design and the keys")
  parser.add_argument("--out", default=str(DEFAULT_OUT), help="Markdown results file")
  args = parser.parse_args()
  MODEL_CHUNK[0] = args.model_chunk
  if args.model_chunk:
    METHODS["a"] = f"ours, one program (vmap, chunks of {args.model_chunk})"
  if any(k < 2 or k % 2 for k in args.models):
    parser.error("--models: every K must be even and >= 2 (complement pairs)")
  if args.epochs < 1 or args.repeats < 1:
    parser.error("--epochs and --repeats must be >= 1")
  command = "python " + " ".join(shlex.quote(a) for a in [
      os.path.relpath(sys.argv[0]) if Path(sys.argv[0]).exists() else sys.argv[0], *sys.argv[1:]])

  jax.config.update("jax_enable_compilation_cache", False)  # cold compiles, every run
  torch, tn, torch_note = (None, None, "skipped (--skip-torch)") if args.skip_torch \
      else import_torch()
  if torch_note:
    print(f"note: (c) {torch_note}", flush=True)

  ds = load_data(cfg)
  n = len(ds.train.y)
  m = n // 2
  ours = Ours(cfg, ds, args.epochs, m)
  params = count_params(T.create_train_state(ours.model, ours.tx, jax.random.PRNGKey(0),
                                             ds.image_shape).params)
  tw = None if torch is None else Torch(torch, tn, cfg, ds, args.epochs, m, params)
  t = cfg.train
  recipe = {"dataset": cfg.data.name, "train_rows": n, "rows_per_model": m,
            "test_rows": int(len(ds.test.y)), "model": cfg.model.to_dict(), "params": params,
            "epochs": args.epochs, "config_epochs": t.epochs, "batch_size": t.batch_size,
            "steps_per_epoch": ours.steps, "learning_rate": t.learning_rate,
            "momentum": t.momentum, "weight_decay": t.weight_decay, "schedule": t.schedule,
            "final_lr_fraction": t.final_lr_fraction, "model_axis": MODEL_AXIS,
            "model_chunk": args.model_chunk,
            "design": "complement_pairs"}
  prewarm(ours, tw)
  load_start = load_average()
  print(f"load average at start: {load_start} on {os.cpu_count()} cores", flush=True)
  print(f"recipe: {recipe}", flush=True)
  print("\n" + HEADER, flush=True)

  results, fz_rows = [], []
  for k in args.models:
    subsets, keep = random_subsets(k, n, seed=args.seed)
    cold_caches()
    entry = {"K": k, "load_before": load_average(), "rows": {}}
    kw = dict(epochs=args.epochs, repeats=args.repeats, k=k)
    row, state_a = measure(
        "a", lambda: ours.stacked(subsets, epochs=1, seed=args.seed),
        lambda: ours.stacked(subsets, epochs=args.epochs, seed=args.seed),
        ours.test_accuracy, **kw)
    entry["rows"]["a"] = row
    row_b, states_b = measure(
        "b", lambda: ours.loop(subsets, epochs=1, seed=args.seed, count=1),
        lambda: ours.loop(subsets, epochs=args.epochs, seed=args.seed),
        lambda states: ours.test_accuracy(T.stack(states)), **kw)
    entry["rows"]["b"] = row_b
    row_b["max_abs_test_acc_diff_vs_a"] = float(np.max(np.abs(
        np.asarray(row_b["test_acc"]) - np.asarray(row["test_acc"]))))
    del states_b
    if tw is not None:
      settle()
      entry["rows"]["c"], _ = measure(
          "c", lambda: tw.loop(subsets, epochs=1, seed=args.seed, count=1),
          lambda: tw.loop(subsets, epochs=args.epochs, seed=args.seed),
          tw.test_accuracy, **kw)
      settle()
    fz = {"K": k, **fz_step(ours, state_a, keep)}
    fz_rows.append(fz)
    entry["fz"] = fz
    entry["load_after"] = load_average()
    results.append(entry)
    for r in entry["rows"].values():
      print(table_row(k, r, entry["rows"]), flush=True)
    del state_a

  load_end = load_average()
  info = machine(torch)
  print(f"\nload average at end: {load_end}")
  print("\n| K | predict all n rows + feldman_zhang, cold s (compiles predict) | warm s | "
        "mean score | NaN scores |\n|---|---|---|---|---|")
  for fz in fz_rows:
    print(f"| {fz['K']} | {fz['cold_s']:.2f} | {fz['warm_s']:.2f} | {fz['mean_score']:.3f} | "
          f"{fz['nan_scores']} |")
  for e in results:
    print(f"K={e['K']}: (a) vs (b) max |test acc diff| over models "
          f"{100 * e['rows']['b']['max_abs_test_acc_diff_vs_a']:.2f} pts; load "
          f"{e['load_before']} -> {e['load_after']}")

  out = Path(args.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  md = markdown(command, info, recipe, results, fz_rows, load_start, load_end, args, torch_note)
  out.write_text(md)
  out.with_suffix(".json").write_text(json.dumps({
      "command": command, "machine": info, "recipe": recipe, "repeats": args.repeats,
      "load_average_start": load_start, "load_average_end": load_end, "torch_note": torch_note,
      "results": results}, indent=2) + "\n")
  print(f"\nsaved {out} and {out.with_suffix('.json')}")


def markdown(command, info, recipe, results, fz_rows, load_start, load_end, args,
             torch_note) -> str:
  torch_desc = (f"torch {info['torch']} ({info['torch_threads']} threads, the default of "
                "torch.set_num_threads, left as is)" if "torch" in info else f"torch {torch_note}")
  lines = [
      f"# Shadow models: K half-data MNIST-1D MLPs ({info['backend']}, {info['cpu_count']} cores)",
      "",
      f"`{command}` at commit {info['commit']}, {info['date']}; {info['cpu_model']}, "
      f"{info['cpu_count']} cores, "
      f"{info['platform']}, Python {info['python']}, jax {info['jax']}, {torch_desc}. "
      f"Load average {load_start} at start, {load_end} at end (per K below). Raw numbers: "
      f"`{Path(args.out).with_suffix('.json').name}`.",
      "",
      f"Recipe (the main job's default config, `experiments/configs/unlearn.py`): "
      f"{recipe['dataset']}, {recipe['model']['name']} width {recipe['model']['width']} "
      f"norm {recipe['model']['norm']} init {recipe['model']['init']} ({recipe['params']:,} "
      f"params), {recipe['epochs']} epochs (config: {recipe['config_epochs']}), batch "
      f"{recipe['batch_size']}, SGD lr {recipe['learning_rate']} momentum {recipe['momentum']} "
      f"weight decay {recipe['weight_decay']}, {recipe['schedule']} schedule per step down to "
      f"{recipe['final_lr_fraction']} x lr. Complement-pairs design (`random_subsets`): "
      f"each model trains on {recipe['rows_per_model']:,} of the {recipe['train_rows']:,} "
      f"training rows, {recipe['steps_per_epoch']} steps per epoch; test accuracy on the "
      f"{recipe['test_rows']:,} test rows. {args.repeats} timed run(s) per cell (median).",
      "",
      "(a) one stacked state, `fit(subsets=...)`, `model_axis=\"vmap\"` (the mnist1d preset's "
      "model axis; `unrolled` steps faster for this MLP on 2 cores but compiles in time growing "
      "with K, docs/platform.md); (b) K single-model `fit` calls on "
      "`x[subsets[k]]`, one compiled program reused; (c) the PyTorch twin (equal parameter count, "
      "Flax's init) trained K times one after another, eager. compile = warm-up `fit(epochs=1)` "
      "(one model for (b) and (c)) minus one epoch of the timed run; run = the timed run (state "
      "creation + all epochs of all K models); total = compile + run (a fresh process, no "
      "persistent compilation cache; one-time first-use costs of JAX and torch paid beforehand "
      "by an untimed pre-warm on other shapes; compiled programs dropped before each K); models/s and speedups on total.",
      "",
      HEADER,
  ]
  for e in results:
    for r in e["rows"].values():
      lines.append(table_row(e["K"], r, e["rows"]))
  lines += ["", "Feldman-Zhang scores (ours, from (a)'s models): logits of the K models on all "
            "training rows (`train.predict`, vmap) + `metrics.memorization.feldman_zhang`.", "",
            "| K | cold s (compiles predict) | warm s | mean score | NaN scores |",
            "|---|---|---|---|---|"]
  for fz in fz_rows:
    lines.append(f"| {fz['K']} | {fz['cold_s']:.2f} | {fz['warm_s']:.2f} | "
                 f"{fz['mean_score']:.3f} | {fz['nan_scores']} |")
  lines += ["", "Per K: load before -> after; (a) vs (b) largest test-accuracy difference of one "
            "model (same keys, so the same model up to float reassociation under vmap):", ""]
  for e in results:
    lines.append(f"- K={e['K']}: load {e['load_before']} -> {e['load_after']}; "
                 f"max |acc(a) - acc(b)| {100 * e['rows']['b']['max_abs_test_acc_diff_vs_a']:.2f}"
                 " pts")
  lines += ["", "Not equal between the ways: (c) draws its own init and data order (torch's "
            "generator; same distributions, not the same numbers); XLA uses both cores through "
            "its own thread pool while torch uses its intra-op threads; torch runs eager (no "
            "`torch.compile`: `train_throughput` found it only ~3 % faster for this MLP on CPU).", ""]
  return "\n".join(lines)


if __name__ == "__main__":
  main()
