"""Why the small CNN trains slowly on XLA:CPU, and what would close the gap (micro-benchmark).

  python benchmarks/cnn_cpu_profile.py [--quick] [--profile] [--cases mnist5k_cnn,cnn1_32]

1. `--profile`: a jax.profiler trace of the library's CNN train step (one model), summed per
   XLA op (thunk) and grouped: max-pool backward (XLA:CPU expands `select_and_scatter` into a
   5-operand reduce-window over (value, index iotas) plus a scatter), convolutions, the rest.
2. The same train step (`unlearn_jax.train._compiled_epoch_step`, same parameter tree, same
   recipe) with drop-in variants of the CNN defined here (the library's models are untouched):
     lib      flax `nn.max_pool` (reduce-window; gradient = select-and-scatter) + `nn.Conv`
     reshape  2x2/2 max-pool as reshape + max over the window axes (gradient = an equality
              mask, no select-and-scatter) + `nn.Conv`
     patches  reshape pool + 3x3 conv as 9 shifted slices concatenated and one matmul (under
              `vmap` a batched matmul instead of a grouped convolution)
   for one model and N models with `vmap`, `unrolled`, or `sequential` (not a library strategy:
   N single-model programs called from a Python loop, as N runs would); variants are timed in
   interleaved rounds (medians), so load drift hits them alike. One step of each variant is
   checked against `lib` (same updated parameters up to float tolerance).
3. The PyTorch twin (`torch_nets.py`, eager) for reference when torch is installed.

Results are printed (Markdown) and, with `--out`, saved as JSON with the load averages.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import glob
import json
import os
import platform
import re
import statistics
import sys
from pathlib import Path
import tempfile
import time

if "--profile" in sys.argv:  # per-thunk trace events; must be set before jax starts
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                             + " --xla_cpu_enable_xprof_traceme=true").strip()

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from unlearn_jax import train as T  # noqa: E402
from unlearn_jax.models import build_model, count_params, split_module  # noqa: E402
from unlearn_jax.models.layers import Norm, scaled  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import load_average  # noqa: E402  (the scripts beside this one)

CASES = {  # key -> (width, HWC, batch, weight decay), as in train_throughput.py
    "mnist5k_cnn": (0.5, (28, 28, 1), 64, 5e-4),
    "cnn1_32": (1.0, (32, 32, 3), 128, 5e-4),
}


def pool_reshape(x):
  """2x2 stride-2 max-pool, SAME padding (pads odd sizes with -inf), via reshape + max."""
  b, h, w, c = x.shape
  ph, pw = h % 2, w % 2
  if ph or pw:
    x = jnp.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)), constant_values=-jnp.inf)
  return x.reshape(b, (h + ph) // 2, 2, (w + pw) // 2, 2, c).max(axis=(2, 4))


class PatchConv(nn.Module):
  """3x3 SAME conv without bias as im2col (9 shifted slices) + one matmul; kernel as nn.Conv."""
  features: int

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (3, 3, x.shape[-1], self.features))
    h, w = x.shape[1:3]
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    patches = jnp.concatenate([xp[:, i:i + h, j:j + w, :] for i in range(3) for j in range(3)],
                              axis=-1)
    return patches @ kernel.reshape(-1, self.features)


class CNNVariant(nn.Module):
  """unlearn_jax.models.CNN (BatchNorm) with a choice of pooling and convolution."""
  num_classes: int
  width: float = 1.0
  pool: str = "lib"      # lib | reshape
  conv: str = "lib"      # lib | patches

  @nn.compact
  def __call__(self, x, train: bool = False):
    for i, base in enumerate((16, 32, 64)):
      ch = scaled(base, self.width)
      if self.conv == "patches":
        x = PatchConv(ch, name=f"conv{i}")(x)
      else:
        x = nn.Conv(ch, (3, 3), padding="SAME", use_bias=False, name=f"conv{i}")(x)
      x = nn.relu(Norm("batch", name=f"norm{i}")(x, train))
      if i < 2:
        x = (pool_reshape(x) if self.pool == "reshape"
             else nn.max_pool(x, (2, 2), strides=(2, 2), padding="SAME"))
    return nn.Dense(self.num_classes, name="classifier")(jnp.mean(x, axis=(1, 2)))


VARIANTS = {"lib": dict(pool="lib", conv="lib"), "reshape": dict(pool="reshape", conv="lib"),
            "patches": dict(pool="reshape", conv="patches")}


def make_runner(model, width, image, batch, wd, n, axis):
  """A closure running k steps of our compiled epoch step on random data, the initial state and
  (step, x, y, perm) for the equivalence check. `axis`: vmap | unrolled | sequential (N separate
  single-model programs from a Python loop)."""
  tx = T.make_optimizer(learning_rate=0.1, total_steps=1000, weight_decay=wd)
  key = jax.random.PRNGKey(0) if n is None else jax.random.split(jax.random.PRNGKey(0), n)
  state = T.create_train_state(model, tx, key, image)
  x = jax.random.normal(jax.random.PRNGKey(0), (batch * 4, *image))
  y = jax.random.randint(jax.random.PRNGKey(1), (batch * 4,), 0, 10)
  stacked = n is not None
  perm = T.epoch_permutations(jax.random.split(jax.random.PRNGKey(1), n) if stacked
                              else jax.random.PRNGKey(1), 0, n=x.shape[0], stacked=stacked)
  if axis == "sequential":  # N single-model programs called one after another
    step = T._compiled_epoch_step(T.train_step, batch, False, None, "vmap")
    states = [T.unstack(state, i) for i in range(n)]
    box = {"i": 0}

    def run_seq(k=1):
      for _ in range(k):
        for j in range(n):
          states[j], m = step(states[j], x, y, perm[j], box["i"] % 4)
        box["i"] += 1
      jax.block_until_ready((states, m))

    return run_seq, state, None
  step = T._compiled_epoch_step(T.train_step, batch, stacked, None, axis)
  box = {"state": jax.tree_util.tree_map(jnp.copy, state), "i": 0}

  def run(k=1):
    for _ in range(k):
      box["state"], m = step(box["state"], x, y, perm, box["i"] % 4)
      box["i"] += 1
    jax.block_until_ready((box["state"], m))

  return run, state, (step, x, y, perm)


def check_same_step(ref, other):
  """One step from the same state: updated parameters of `other` match `ref`'s."""
  (s0, (f0, x, y, p)), (s1, (f1, _, _, _)) = ref, other
  a = f0(jax.tree_util.tree_map(jnp.copy, s0), x, y, p, 0)[0].params
  b = f1(jax.tree_util.tree_map(jnp.copy, s1), x, y, p, 0)[0].params
  diffs = jax.tree_util.tree_map(lambda u, v: float(jnp.max(jnp.abs(u - v))), a, b)
  return max(jax.tree_util.tree_leaves(diffs))


def hlo_index(text: str):
  """instruction name -> its line plus the bodies of the computations it calls (compiled HLO)."""
  bodies, lines, cur = {}, {}, None
  for line in text.splitlines():
    if line and not line.startswith(" ") and line.rstrip().endswith("{"):
      cur = line.split()[1 if line.startswith("ENTRY") else 0].lstrip("%")
      bodies[cur] = []
    elif cur is not None and line.strip().startswith(("%", "ROOT %")):
      bodies[cur].append(line)
      name = line.strip().removeprefix("ROOT ").split(" ", 1)[0].lstrip("%")
      lines[name] = line
  index = {}
  for name, line in lines.items():
    called = re.findall(r"(?:calls|to_apply)=%([\w.\-]+)", line)
    index[name] = "\n".join([line] + [b for c in called for b in bodies.get(c, [])])
  return index


POOL_BWD = "max-pool backward (select_and_scatter expanded)"


def classify(name: str, text: str) -> str:
  """Group of a profiled op from its compiled HLO (`text`: line + called bodies)."""
  if ("select_and_scatter" in text or name.startswith(("wrapped_iota", "concatenate_bitcast"))
      or ("reduce-window(" in text and "s32[" in text)):
    return POOL_BWD
  if "convolution(" in text:
    return "convolutions (forward, input and kernel gradients)"
  return "rest (BatchNorm/ReLU fusions, layout copies, loss, SGD)"


def profile_lib(width, image, batch, wd, steps=20):
  """Per-op milliseconds per step of the library CNN's train step, from a profiler trace."""
  from jax._src.lib import _profile_data  # pylint: disable=import-outside-toplevel
  model = build_model("cnn", 10, width=width)
  run, state, (step, x, y, perm) = make_runner(model, width, image, batch, wd, None, "vmap")
  index = hlo_index(step.lower(state, x, y, perm, 0).compile().as_text())
  run(3)
  d = tempfile.mkdtemp(prefix="cnn_profile_")
  t = time.perf_counter()
  jax.profiler.start_trace(d)
  run(steps)
  jax.profiler.stop_trace()
  wall = (time.perf_counter() - t) / steps
  f = sorted(glob.glob(d + "/**/*.xplane.pb", recursive=True))[-1]
  ops = collections.Counter()
  for plane in _profile_data.ProfileData.from_file(f).planes:
    for line in plane.lines:
      if line.name == "python":
        continue
      for ev in line.events:
        if "Execute" not in ev.name and "$" not in ev.name:
          ops[ev.name] += ev.duration_ns / 1e6 / steps
  group = {n: classify(n, index.get(n, "")) for n in ops}
  for n in list(group):  # the zeros a pool-backward scatter starts from belong to it too
    if group[n] == POOL_BWD and "scatter" in n:
      for operand in re.findall(r"%([\w.\-]+)", index.get(n, "").split("\n")[0].split("=", 1)[-1]):
        if operand.startswith("wrapped_broadcast") and operand in group:
          group[operand] = POOL_BWD
  groups = collections.Counter()
  for name, ms in ops.items():
    groups[group[name]] += ms
  return {"wall_ms_per_step_traced": 1e3 * wall, "op_ms_per_step": dict(ops.most_common(25)),
          "op_group": {n: group[n] for n, _ in ops.most_common(25)},
          "groups_ms_per_step": dict(groups)}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true")
  parser.add_argument("--profile", action="store_true", help="trace the library step per op")
  parser.add_argument("--cases", default="mnist5k_cnn")
  parser.add_argument("--models", type=int, default=8, help="N for the vmap/unrolled rows")
  parser.add_argument("--rounds", type=int, default=None)
  parser.add_argument("--torch-threads", type=int, default=os.cpu_count())
  parser.add_argument("--profile-only", action="store_true", help="only the profile (with --profile)")
  parser.add_argument("--out", default=None, help="save results as JSON here")
  args = parser.parse_args()
  rounds = args.rounds or (3 if args.quick else 7)
  target = 0.2 if args.quick else 0.6
  results = {"load_average_start": load_average(), "cpu_count": os.cpu_count(),
             "platform": platform.platform(), "python": platform.python_version(),
             "jax": jax.__version__, "torch_threads": args.torch_threads,
             "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
             "cases": {}}
  print(f"load average at start: {results['load_average_start']} on {os.cpu_count()} cores")
  for key in args.cases.split(","):
    width, image, batch, wd = CASES[key]
    res = results["cases"][key] = {"width": width, "image": image, "batch": batch}
    if args.profile:
      prof = res["profile"] = profile_lib(width, image, batch, wd)
      print(f"\n{key}: library step, profiled ({prof['wall_ms_per_step_traced']:.1f} ms/step "
            "wall while tracing; op times summed over threads)\n")
      print("| group | ms/step | share |\n|---|---|---|")
      total = sum(prof["groups_ms_per_step"].values())
      for g, ms in sorted(prof["groups_ms_per_step"].items(), key=lambda kv: -kv[1]):
        print(f"| {g} | {ms:.2f} | {100 * ms / total:.0f} % |")
      print("\n| op (top 12) | group | ms/step |\n|---|---|---|")
      for op, ms in list(prof["op_ms_per_step"].items())[:12]:
        print(f"| {op} | {prof['op_group'][op].split(' (')[0]} | {ms:.2f} |")

    if args.profile_only:
      continue
    runners, checks = {}, {}
    for n, axis in ((None, "vmap"), (args.models, "vmap"), (args.models, "unrolled"),
                    (args.models, "sequential")):
      label = "1 model" if n is None else f"N={n} {axis}"
      for v, kw in VARIANTS.items():
        model = split_module(CNNVariant(10, width, **kw), f"cnn-{v}")
        run, state, parts = make_runner(model, width, image, batch, wd, n, axis)
        if n is None and v == "lib":
          lib_params = count_params(build_model("cnn", 10, width=width).init(
              jax.random.PRNGKey(0), jnp.zeros((1, *image)))[0])
          assert count_params(state.params) == lib_params
        t = time.perf_counter()
        run()
        compile_s = time.perf_counter() - t
        t = time.perf_counter()
        run()
        steps = max(1, int(target / (time.perf_counter() - t)))
        runners[(label, v)] = {"run": run, "steps": steps, "times": [], "compile_s": compile_s,
                               "state": (state, parts), "n": n or 1}
      ref = runners[(label, "lib")]["state"]
      for v in ("reshape", "patches"):
        if ref[1] is not None:  # sequential rows run the 1-model program (checked there)
          checks[(label, v)] = check_same_step(ref, runners[(label, v)]["state"])
    if args.torch_threads:
      try:
        import torch  # pylint: disable=import-outside-toplevel
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import torch_nets as tn  # pylint: disable=import-outside-toplevel
        torch.set_num_threads(args.torch_threads)
        results["torch"] = torch.__version__
      except ImportError:
        torch = None
      if torch is not None:
        net = tn.build("cnn", image, width=width)
        opt, sched = tn.make_optimizer(net, learning_rate=0.1, total_steps=1000,
                                       weight_decay=wd)
        h, w, c = image
        tx_, ty_ = torch.randn(batch * 4, c, h, w), torch.randint(0, 10, (batch * 4,))
        tb = {"i": 0}

        def trun(k=1):
          for _ in range(k):
            i = tb["i"] % 4
            tn.train_step(net, opt, sched, tx_, ty_, torch.arange(i * batch, (i + 1) * batch))
            tb["i"] += 1

        trun(2)
        t = time.perf_counter()
        trun()
        runners[("1 model", "torch eager")] = {"run": trun, "n": 1, "times": [], "compile_s": 0,
                                               "steps": max(1, int(target / (time.perf_counter()
                                                                             - t)))}
    for _ in range(rounds):  # interleaved: every variant once per round
      for r in runners.values():
        t = time.perf_counter()
        r["run"](r["steps"])
        r["times"].append((time.perf_counter() - t) / r["steps"])
        if "state" not in r:
          time.sleep(0.2)  # torch's OpenMP threads stop spinning
    print(f"\n{key}: train step, batch {batch}, median of {rounds} interleaved rounds "
          f"(load {load_average()})\n")
    print("| model axis | variant | step (ms) | ex/s (all models) | vs lib | max |dparams| vs lib "
          "| compile (s) |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for (label, v), r in runners.items():
      ms = 1e3 * statistics.median(r["times"])
      lib_ms = 1e3 * statistics.median(runners[(label, "lib")]["times"])
      row = {"axis": label, "variant": v, "step_ms": ms, "examples_per_s": r["n"] * batch * 1e3
             / ms, "speedup_vs_lib": lib_ms / ms, "max_param_diff": checks.get((label, v)),
             "compile_s": r["compile_s"], "times_ms": [1e3 * t for t in r["times"]]}
      rows.append(row)
      diff = "–" if row["max_param_diff"] is None else f"{row['max_param_diff']:.1e}"
      print(f"| {label} | {v} | {ms:.2f} | {row['examples_per_s']:.0f} | "
            f"{row['speedup_vs_lib']:.2f}x | {diff} | {r['compile_s']:.1f} |", flush=True)
    res["rows"] = rows
  results["load_average_end"] = load_average()
  print(f"\nload average at end: {results['load_average_end']}")
  if args.out:
    with open(args.out, "w") as f:
      json.dump(results, f, indent=2)
    print(f"saved {args.out}")


if __name__ == "__main__":
  main()
