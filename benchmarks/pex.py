"""Per-example gradients: `unlearn_jax.pex` vs a Python loop of `jax.grad` vs PyTorch `torch.func`.

  python benchmarks/pex.py [--quick] [--tag NAME] [--torch-python PATH] [--cases a,b]

For each case (the default MLP, the CNN and the post-activation ResNet-18 at two widths each), one
batch of B examples and one set of weights, BatchNorm in inference mode:
  pex     `pex.per_example_gradients` (one jitted vmap(grad) over the batch)
  loop    a Python loop of one jitted `jax.grad` per example (B dispatches)
  torch   `torch.func.vmap(torch.func.grad(functional_call))` on the PyTorch twin in eval mode
          (`benchmarks/torch_nets.py` for the MLP and CNN, a ResNet-18 twin below), run in a
          separate interpreter that has PyTorch (`--torch-python`, e.g. /work/torchvenv/bin/python;
          PyTorch is a benchmark-only extra and never a dependency of the library)
For the MLP and CNN the JAX weights and BatchNorm statistics are copied into the twin and the
per-example gradients are compared (max |Δ| in the table); the ResNet twin has the same
architecture and parameter count (asserted) with its own initial weights (speed does not depend
on the values). Also: peak temporary memory of the compiled pex chunk vs the chunk size (XLA's
`memory_analysis`), and the localization cost on the default benchmark (|θ ⊙ Σ|g_i|| over a
forget set of 400) relative to one training epoch of 4000 examples.

Writes benchmarks/results/pex_<tag>.json and .md with the machine and the load averages (issue 11
calls this script `benchmarks/per_example_grads.py`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

# key, label, model, width, image (H, W, C), batch
CASES = (
    ("mlp", "MLP 256x256 on MNIST-1D (default)", "mlp", 1.0, (1, 40, 1), 64),
    ("cnn05", "CNN w0.5 28x28x1", "cnn", 0.5, (28, 28, 1), 64),
    ("cnn1", "CNN w1 28x28x1", "cnn", 1.0, (28, 28, 1), 64),
    ("resnet18_0125", "ResNet-18 w0.125 32x32x3", "resnet18", 0.125, (32, 32, 3), 32),
    ("resnet18_025", "ResNet-18 w0.25 32x32x3", "resnet18", 0.25, (32, 32, 3), 32),
)


def median_time(fn, *, repeats: int, min_s: float = 0.3) -> tuple[float, float]:
  """(warm-up seconds, median seconds per call) of `fn()` (which must block)."""
  t = time.perf_counter()
  fn()
  warm = time.perf_counter() - t
  t = time.perf_counter()
  fn()
  one = time.perf_counter() - t
  reps = max(1, int(math.ceil(min_s / max(one, 1e-6))))
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    for _ in range(reps):
      fn()
    times.append((time.perf_counter() - t) / reps)
  return warm, statistics.median(times)


# ----------------------------------------------------------------------------------------------
# The PyTorch side (runs in the interpreter that has torch; imports no JAX).


def torch_resnet18(width: float, num_classes: int = 10):
  """Post-activation ResNet-18 with the CIFAR stem, as `unlearn_jax.models.resnet.ResNet`."""
  import torch
  from torch import nn

  def sc(c):
    return max(1, int(round(c * width)))

  class Block(nn.Module):
    def __init__(self, cin, cout, stride):
      super().__init__()
      self.c0 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
      self.n0 = nn.BatchNorm2d(cout)
      self.c1 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
      self.n1 = nn.BatchNorm2d(cout)
      self.short = None
      if stride != 1 or cin != cout:
        self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                   nn.BatchNorm2d(cout))

    def forward(self, x):
      out = torch.relu(self.n0(self.c0(x)))
      out = self.n1(self.c1(out))
      return torch.relu(out + (x if self.short is None else self.short(x)))

  class Net(nn.Module):
    def __init__(self):
      super().__init__()
      c = sc(64)
      self.stem = nn.Sequential(nn.Conv2d(3, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c),
                                nn.ReLU())
      blocks, cin = [], c
      for i, base in enumerate((64, 128, 256, 512)):
        for j in range(2):
          blocks.append(Block(cin, sc(base), 2 if (i > 0 and j == 0) else 1))
          cin = sc(base)
      self.blocks = nn.Sequential(*blocks)
      self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
      return self.fc(self.blocks(self.stem(x)).mean(dim=(2, 3)))

  return Net()


def torch_worker(spec_path: str, out_path: str) -> None:
  """Time torch.func per-example gradients for the case in `spec_path` (npz + json)."""
  import torch
  from torch.func import functional_call, grad, vmap

  sys.path.insert(0, str(HERE))
  import torch_nets

  spec = json.loads(Path(spec_path + ".json").read_text())
  arrays = dict(np.load(spec_path + ".npz"))
  torch.set_num_threads(int(spec["threads"]))
  torch.manual_seed(0)
  h, w, c = spec["image"]
  if spec["model"] == "resnet18":
    net = torch_resnet18(spec["width"])
  else:
    net = torch_nets.build(spec["model"], (h, w, c), 10, width=spec["width"], norm="batch")
  net.eval()
  n_params = sum(p.numel() for p in net.parameters())
  loaded = 0
  state = net.state_dict()
  for name, value in arrays.items():
    if name.startswith("w:"):
      key = name[2:]
      assert tuple(state[key].shape) == value.shape, (key, state[key].shape, value.shape)
      state[key] = torch.from_numpy(value)
      loaded += 1
  net.load_state_dict(state)
  x = torch.from_numpy(np.transpose(arrays["x"], (0, 3, 1, 2)).copy())  # NHWC -> NCHW
  y = torch.from_numpy(arrays["y"].astype(np.int64))
  params = {k: v.detach() for k, v in net.named_parameters()}
  buffers = {k: v.detach() for k, v in net.named_buffers()}

  def loss(p, xi, yi):
    out = functional_call(net, (p, buffers), (xi[None],))
    return torch.nn.functional.cross_entropy(out, yi[None])

  per_example = vmap(grad(loss), in_dims=(None, 0, 0))

  def run():
    with torch.no_grad():
      return per_example(params, x, y)

  warm, step = median_time(run, repeats=int(spec["repeats"]))

  def loop():
    for i in range(len(y)):
      net.zero_grad(set_to_none=True)
      torch.nn.functional.cross_entropy(net(x[i:i + 1]), y[i:i + 1]).backward()

  loop_warm, loop_step = median_time(loop, repeats=int(spec["repeats"]))
  g = run()
  first = {k: v[0].numpy() for k, v in g.items()}
  np.savez(out_path + ".npz", **{f"g:{k}": v for k, v in first.items()})
  Path(out_path + ".json").write_text(json.dumps({
      "torch": torch.__version__, "threads": torch.get_num_threads(), "params": n_params,
      "loaded": loaded, "warmup_s": warm, "step_s": step, "loop_warmup_s": loop_warm,
      "loop_step_s": loop_step}))


# ----------------------------------------------------------------------------------------------
# The JAX side.


def torch_weights(model_name: str, params, model_state) -> dict[str, np.ndarray]:
  """Our MLP / CNN weights under the PyTorch twin's state_dict names (kernels transposed)."""
  out = {}
  p = {k: v for k, v in params.items()}
  stats = model_state.get("batch_stats", {})
  if model_name == "mlp":
    names = [k for k in ("dense0", "dense1") if k in p]
    for i, k in enumerate(names):
      out[f"net.{1 + 3 * i}.weight"] = np.asarray(p[k]["kernel"]).T
      out[f"net.{1 + 3 * i}.bias"] = np.asarray(p[k]["bias"])
      bn, st = p[f"norm{i}"]["BatchNorm_0"], stats[f"norm{i}"]["BatchNorm_0"]
      out[f"net.{2 + 3 * i}.weight"] = np.asarray(bn["scale"])
      out[f"net.{2 + 3 * i}.bias"] = np.asarray(bn["bias"])
      out[f"net.{2 + 3 * i}.running_mean"] = np.asarray(st["mean"])
      out[f"net.{2 + 3 * i}.running_var"] = np.asarray(st["var"])
    out[f"net.{1 + 3 * len(names)}.weight"] = np.asarray(p["classifier"]["kernel"]).T
    out[f"net.{1 + 3 * len(names)}.bias"] = np.asarray(p["classifier"]["bias"])
  elif model_name == "cnn":
    idx = 0
    for i in range(3):
      out[f"features.{idx}.weight"] = np.transpose(np.asarray(p[f"conv{i}"]["kernel"]),
                                                   (3, 2, 0, 1))
      bn, st = p[f"norm{i}"]["BatchNorm_0"], stats[f"norm{i}"]["BatchNorm_0"]
      out[f"features.{idx + 1}.weight"] = np.asarray(bn["scale"])
      out[f"features.{idx + 1}.bias"] = np.asarray(bn["bias"])
      out[f"features.{idx + 1}.running_mean"] = np.asarray(st["mean"])
      out[f"features.{idx + 1}.running_var"] = np.asarray(st["var"])
      idx += 4 if i < 2 else 3
    out["classifier.weight"] = np.asarray(p["classifier"]["kernel"]).T
    out["classifier.bias"] = np.asarray(p["classifier"]["bias"])
  return {k: np.ascontiguousarray(v, np.float32) for k, v in out.items()}


def compare(model_name: str, ours_first, model_state, torch_first: dict) -> float | None:
  """max |Δ| between our and torch's gradients of example 0 (names as in torch_weights)."""
  if model_name not in ("mlp", "cnn"):
    return None
  ours = torch_weights(model_name, ours_first, model_state)
  return max(float(np.abs(v - torch_first[f"g:{k}"]).max()) for k, v in ours.items()
             if "running" not in k)


def run_case(case, args, torch_python):
  import jax
  import jax.numpy as jnp

  from unlearn_jax import pex
  from unlearn_jax.models import build_model, count_params, init_model

  key, label, name, width, image, batch = case
  model = build_model(name, 10, width=width, norm="batch")
  params, ms = init_model(model, jax.random.PRNGKey(0), image)
  # non-trivial running statistics (inference-mode BatchNorm)
  rng = np.random.default_rng(0)
  ms = jax.tree_util.tree_map_with_path(
      lambda p, a: jnp.asarray(rng.uniform(0.5, 2.0, a.shape) if "var" in str(p)
                               else rng.normal(0, 0.2, a.shape), a.dtype), ms)
  x = jax.random.normal(jax.random.PRNGKey(1), (batch, *image))
  y = jax.random.randint(jax.random.PRNGKey(2), (batch,), 0, 10)
  loss = pex.inference_loss(model.apply)
  row = {"case": key, "label": label, "params": count_params(params), "batch": batch,
         "load_before": list(os.getloadavg())}

  def run_pex():
    return jax.block_until_ready(pex.per_example_gradients(loss, params, (x, y), consts=ms,
                                                           chunk_size=batch))

  row["pex_warmup_s"], row["pex_s"] = median_time(run_pex, repeats=args.repeats)
  g1 = jax.jit(jax.grad(loss))

  def run_loop():
    out = [g1(params, (x[i], y[i]), ms) for i in range(batch)]
    return jax.block_until_ready(out)

  row["loop_warmup_s"], row["loop_s"] = median_time(run_loop, repeats=args.repeats)
  # peak temporary memory of one compiled chunk vs its size
  mem = {}
  for c in args.chunks:
    fn = pex._compiled_materialise(loss, True, False)  # noqa: SLF001 - the program pex runs
    xs, ys = x[:1].repeat(c, 0), y[:1].repeat(c, 0)
    try:
      ma = fn.lower(params, ms, (xs, ys), jnp.ones(c)).compile().memory_analysis()
      mem[str(c)] = int(ma.temp_size_in_bytes + ma.output_size_in_bytes)
    except Exception:  # noqa: BLE001 - not every backend reports it
      mem[str(c)] = None
  row["chunk_bytes"] = mem
  if torch_python and name in ("mlp", "cnn", "resnet18"):
    with tempfile.TemporaryDirectory() as tmp:
      spec = Path(tmp) / "case"
      weights = torch_weights(name, params, ms) if name in ("mlp", "cnn") else {}
      np.savez(str(spec) + ".npz", x=np.asarray(x), y=np.asarray(y),
               **{f"w:{k}": v for k, v in weights.items()})
      Path(str(spec) + ".json").write_text(json.dumps(
          {"model": name, "width": width, "image": list(image), "threads": args.threads,
           "repeats": args.repeats}))
      out = Path(tmp) / "out"
      proc = subprocess.run([torch_python, __file__, "--torch-worker", str(spec), str(out)],
                            capture_output=True, text=True)
      if proc.returncode != 0:
        row["torch_error"] = proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"
      else:
        t = json.loads(Path(str(out) + ".json").read_text())
        assert t["params"] == row["params"], (t["params"], row["params"])
        row.update(torch_s=t["step_s"], torch_warmup_s=t["warmup_s"],
                   torch_loop_s=t["loop_step_s"], torch_version=t["torch"],
                   torch_threads=t["threads"])
        if weights:
          tg = dict(np.load(str(out) + ".npz"))
          first = jax.tree_util.tree_map(lambda a: a[0], run_pex())
          row["max_abs_diff"] = compare(name, first, ms, tg)
  row["load_after"] = list(os.getloadavg())
  return row


def localization_vs_epoch(args) -> dict:
  """Localization on the default (400 forget examples, abs_then_sum) vs one training epoch."""
  import jax

  from unlearn_jax import localize, pex
  from unlearn_jax.models import build_model
  from unlearn_jax.train import create_train_state, fit, make_optimizer

  model = build_model("mlp", 10, norm="batch")
  image = (1, 40, 1)
  x = jax.random.normal(jax.random.PRNGKey(1), (4000, *image))
  y = jax.random.randint(jax.random.PRNGKey(2), (4000,), 0, 10)
  tx = make_optimizer(learning_rate=0.1, total_steps=1000)
  state = create_train_state(model, tx, jax.random.PRNGKey(0), image)
  loss = pex.inference_loss(model.apply)
  fx, fy = x[:400], y[:400]
  out = {}
  for agg in ("sum_then_abs", "abs_then_sum"):
    def loc():
      return jax.block_until_ready(localize.per_example_scores(
          loss, state.params, (fx, fy), "weighted_grad", agg, consts=state.model_state))
    out[f"localize_{agg}_warmup_s"], out[f"localize_{agg}_s"] = median_time(
        loc, repeats=args.repeats)

  def epoch():
    return jax.block_until_ready(fit(state, x, y, key=jax.random.PRNGKey(3), epochs=1,
                                     batch_size=64).params)

  out["epoch_warmup_s"], out["epoch_s"] = median_time(epoch, repeats=args.repeats)
  for agg in ("sum_then_abs", "abs_then_sum"):
    out[f"ratio_{agg}"] = out[f"localize_{agg}_s"] / out["epoch_s"]
  return out


def to_markdown(result: dict) -> str:
  f = lambda v, s=".1f": "–" if v is None else format(v, s)
  m = result["machine"]
  rows = result["rows"]
  torch_v = next((r.get("torch_version") for r in rows if r.get("torch_version")), None)
  lines = [f"Machine: {m['cpu_model']}, {m['cpu_count']} CPUs, {m['platform']}, jax {m['jax']}"
           + (f", torch {torch_v} ({rows[0].get('torch_threads')} threads)" if torch_v else "")
           + f"; {m['date']}. Load average before / after the first and last case: "
           f"{[round(v, 2) for v in rows[0]['load_before']]} / "
           f"{[round(v, 2) for v in rows[-1]['load_after']]}. Median of repeats, warm-up "
           "(compile) excluded, BatchNorm in inference mode; per-example gradients of one batch of "
           "B examples (ms per batch).", "",
           "| case | params | B | pex ms | loop of jax.grad ms | torch.func ms | torch loop ms | "
           "loop / pex | torch.func / pex | max abs diff vs torch |",
           "|---|---|---|---|---|---|---|---|---|---|"]
  for r in result["rows"]:
    t = r.get("torch_s")
    lines.append(
        f"| {r['label']} | {r['params']} | {r['batch']} | {f(1e3 * r['pex_s'])} | "
        f"{f(1e3 * r['loop_s'])} | {f(None if t is None else 1e3 * t)} | "
        f"{f(None if r.get('torch_loop_s') is None else 1e3 * r['torch_loop_s'])} | "
        f"{f(r['loop_s'] / r['pex_s'], '.2f')}x | "
        f"{'–' if t is None else format(t / r['pex_s'], '.2f') + 'x'} | "
        f"{'–' if r.get('max_abs_diff') is None else format(r['max_abs_diff'], '.1e')} |")
  lines += ["", "Peak temporary + output memory of one compiled pex chunk (XLA memory_analysis), "
            "MiB:", "", "| case | " + " | ".join(f"chunk {c}" for c in
                                                    result["rows"][0]["chunk_bytes"]) + " |",
            "|---|" + "---|" * len(result["rows"][0]["chunk_bytes"])]
  for r in result["rows"]:
    lines.append(f"| {r['label']} | " + " | ".join(
        "–" if v is None else f"{v / 2**20:.1f}" for v in r["chunk_bytes"].values()) + " |")
  loc = result.get("localization")
  if loc:
    lines += ["", f"Localization on the default (MLP, 400 forget examples, per-example scores) "
              f"vs one training epoch (4000 examples, batch 64): sum_then_abs "
              f"{1e3 * loc['localize_sum_then_abs_s']:.0f} ms, abs_then_sum "
              f"{1e3 * loc['localize_abs_then_sum_s']:.0f} ms, epoch {1e3 * loc['epoch_s']:.0f} ms"
              f" (ratios {loc['ratio_sum_then_abs']:.2f} and {loc['ratio_abs_then_sum']:.2f})."]
  return "\n".join(lines)


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--quick", action="store_true")
  ap.add_argument("--tag", default="cpu-2core")
  ap.add_argument("--torch-python", default="/work/torchvenv/bin/python")
  ap.add_argument("--cases", default=",".join(c[0] for c in CASES))
  ap.add_argument("--repeats", type=int, default=3)
  ap.add_argument("--threads", type=int, default=2)
  ap.add_argument("--chunks", default="1,8,32,64")
  ap.add_argument("--torch-worker", nargs=2, metavar=("SPEC", "OUT"))
  ap.add_argument("--markdown-from", help="rewrite the .md of a saved JSON result and exit")
  args = ap.parse_args()
  if args.torch_worker:
    torch_worker(*args.torch_worker)
    return
  if args.markdown_from:
    src = Path(args.markdown_from)
    src.with_suffix(".md").write_text(to_markdown(json.loads(src.read_text())) + "\n")
    return
  args.chunks = [int(c) for c in args.chunks.split(",")]
  if args.quick:
    args.repeats, args.chunks = 1, [1, 8]
  import jax
  sys.path.insert(0, str(HERE))
  from train_throughput import machine  # the machine facts every benchmark records

  torch_python = args.torch_python if Path(args.torch_python).exists() else None
  wanted = args.cases.split(",")
  rows = [run_case(c, args, torch_python) for c in CASES if c[0] in wanted]
  result = {"machine": machine(), "torch_python": torch_python, "rows": rows,
            "localization": localization_vs_epoch(args), "jax": jax.__version__,
            "note": "median of repeats; warm-up (compile) excluded; BatchNorm in inference "
                    "mode; torch in a separate interpreter with the same thread count"}
  RESULTS.mkdir(exist_ok=True)
  md = to_markdown(result)
  (RESULTS / f"pex_{args.tag}.json").write_text(json.dumps(result, indent=1))
  (RESULTS / f"pex_{args.tag}.md").write_text(md + "\n")
  print(md)


if __name__ == "__main__":
  main()
