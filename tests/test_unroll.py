"""Tests of the SGD unroll (`unlearn_jax/unroll.py`, `20-unroll.md`) against independent references:
separately trained models (optax via `train.make_train_step`, Python loops), numpy, known spectra.

A small BatchNorm MLP on digits keeps every compile short; one unroll configuration is shared by
the tests that only read its records.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from unlearn_jax import train as T
from unlearn_jax import unroll as U
from unlearn_jax.models import build_model

LR, MOM, WD, B, STEPS = 0.05, 0.9, 5e-4, 32, 12


@pytest.fixture(scope="module")
def setup(digits):
  model = build_model("mlp", 10, width=0.125, norm="batch")  # 32 x 32 hidden, BatchNorm
  x, y = jnp.asarray(digits.train.x), jnp.asarray(digits.train.y)
  params, ms = model.init(jax.random.PRNGKey(0), x[:1])
  # B* (rows 0..31) at the front of each of 2 epochs of 5 batches + B* = steps 0 and 6
  idx, forget = U.forget_first_order(6 * B, B, np.arange(B), jax.random.PRNGKey(1), epochs=2)
  assert idx.shape == (STEPS, B) and forget.nonzero()[0].tolist() == [0, 6]
  steps = dict(idx=jnp.asarray(idx), forget=jnp.asarray(forget), lr=jnp.full((STEPS,), LR))
  data = dict(x=x, y=y, hx=x[:128], hy=y[:128])
  return dict(model=model, params=params, ms=ms, steps=steps, data=data, idx=idx, forget=forget)


@functools.lru_cache(maxsize=None)
def _unroll(apply_fn, **kw):
  return U.make_unroll(apply_fn, **{"momentum": MOM, "weight_decay": WD, **kw})


# The canonical configuration: full trajectory, chunks (σ, snapshots) of K = 2 steps, F = 4.
K, F = 2, 4
_RUNS = {}


def _full(setup):
  if "full" not in _RUNS:
    _RUNS["full"] = U.drive(_canonical(setup), setup["params"], setup["ms"], setup["steps"],
                            setup["data"], 0.0, jax.random.PRNGKey(2))
  return _RUNS["full"]


def _canonical(setup, record="full", **kw):
  return _unroll(setup["model"].apply, record=record, every=K, checkpoint_every=F, sigma=True,
                 **kw)


def _leaves(t):
  return [np.asarray(a) for a in jax.tree_util.tree_leaves(t)]


def _separate_training(setup, keep):
  """An independent reference: optax SGD (momentum, coupled wd) through train.make_train_step,
  a Python loop over the kept steps' batches."""
  model, x, y = setup["model"], setup["data"]["x"], setup["data"]["y"]
  tx = T.make_optimizer(learning_rate=LR, total_steps=1, momentum=MOM, weight_decay=WD,
                        schedule="constant")
  st = T.TrainState(step=jnp.int32(0), params=setup["params"], model_state=setup["ms"],
                    opt_state=tx.init(setup["params"]), apply_fn=model.apply, tx=tx)
  step = jax.jit(T.make_train_step())
  for i in np.flatnonzero(keep):
    st, _ = step(st, {"x": x[setup["idx"][i]], "y": y[setup["idx"][i]]})
  return st


def test_lockstep_retrained_equals_separate_training(setup):
  out = _full(setup)
  # 1. The same unroll on the steps without B* (no forget flag, 10 steps): bit-identical M'.
  keep = ~setup["forget"]
  steps = {k: v[keep] for k, v in setup["steps"].items()}
  steps["forget"] = jnp.zeros(int(keep.sum()), bool)
  fin = out["final"]
  alone = U.drive(_canonical(setup), setup["params"], setup["ms"], steps, setup["data"], 0.0,
                  jax.random.PRNGKey(2))["final"]
  # (M' of both runs: the same slot of the same compiled step)
  for k in ("w2", "m2", "s2"):
    for a, b in zip(_leaves(fin[k]), _leaves(alone[k]), strict=True):
      assert a.tobytes() == b.tobytes(), k
  # 2. An independent implementation, optax through train.make_train_step, on the data without
  # B* in the same order: params and momentum bit-identical on CPU; the BatchNorm running means
  # within 2 ulp (the EMA update m·ra + (1 - m)·mean is contracted differently by XLA in the two
  # programs; the forward pass uses batch statistics, so params are unaffected).
  ref = _separate_training(setup, keep)
  for a, b in zip(_leaves(fin["w2"]), _leaves(ref.params), strict=True):
    assert a.tobytes() == b.tobytes()
  trace = [s for s in jax.tree_util.tree_leaves(ref.opt_state, is_leaf=lambda s: isinstance(
      s, optax.TraceState)) if isinstance(s, optax.TraceState)][0].trace
  for a, b in zip(_leaves(fin["m2"]), _leaves(trace), strict=True):
    assert a.tobytes() == b.tobytes()
  assert len(_leaves(fin["s2"])) == 4  # BatchNorm mean/var of both hidden layers
  for a, b in zip(_leaves(fin["s2"]), _leaves(ref.model_state), strict=True):
    np.testing.assert_array_max_ulp(a, b, maxulp=2)
  # the skipped step really was skipped: one more step on B* would have changed them
  assert not np.allclose(_leaves(fin["w2"])[0], _leaves(fin["w"])[0])
  # M saw every batch: the separately trained model on all steps
  ref_all = _separate_training(setup, np.ones(STEPS, bool))
  for a, b in zip(_leaves(fin["w"]), _leaves(ref_all.params), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  # the recorded distances are those of the final models
  np.testing.assert_allclose(out["steps"]["ver_none"][-1],
                             U.verification_error(fin["w"], fin["w2"]), rtol=1e-6)
  np.testing.assert_allclose(out["steps"]["delta_w"][-1],
                             U.verification_error(fin["w"], setup["params"]), rtol=1e-6)
  assert np.isnan(out["steps"]["loss_retrain"][setup["forget"]]).all()


def test_trajectory_shapes_snapshots_and_drivers(setup):
  full = _full(setup)
  p = sum(a.size for a in _leaves(setup["params"]))
  assert full["steps"]["w"].shape == (STEPS, p) and full["steps"]["w_retrain"].shape == (STEPS, p)
  assert full["steps"]["delta_w"].shape == (STEPS,)
  assert full["chunks"]["eigenvalue"].shape == (STEPS // K + 1,)
  np.testing.assert_array_equal(full["steps"]["w"][-1], U.flatten(full["final"]["w"]))
  # trajectory rows are the flat weights: ||w_t - w_0|| from them
  w0 = np.asarray(U.flatten(setup["params"]))
  np.testing.assert_allclose(np.linalg.norm(np.asarray(full["steps"]["w"]) - w0, axis=1),
                             full["steps"]["delta_w"], rtol=1e-5)
  # every-K snapshots, from the Python driver (one jitted chunk per call, its inner scan
  # unrolled): snapshot j is row K(j+1) - 1 of the full trajectory, and the records agree
  u = _canonical(setup, record="every", inner_unroll=True)
  every = U.drive(u, setup["params"], setup["ms"], setup["steps"], setup["data"], 0.0,
                  jax.random.PRNGKey(2), driver="python")
  assert every["chunks"]["w"].shape == (STEPS // K, p)
  assert "w" not in every["steps"]
  for name in ("w", "w_retrain"):
    np.testing.assert_allclose(every["chunks"][name], full["steps"][name][K - 1::K], rtol=1e-5,
                               atol=1e-7)
  for k, v in every["steps"].items():
    np.testing.assert_allclose(v, full["steps"][k], rtol=2e-5, atol=1e-6, err_msg=k)
  np.testing.assert_allclose(every["chunks"]["eigenvalue"], full["chunks"]["eigenvalue"],
                             rtol=1e-4)
  with pytest.raises(ValueError, match="not a multiple of every=5"):
    U.drive(_unroll(setup["model"].apply, every=5), setup["params"], setup["ms"],
            setup["steps"], setup["data"])
  with pytest.raises(ValueError, match="unknown record mode"):
    U.make_unroll(setup["model"].apply, record="all")


def test_vmapped_sweep_equals_separate_runs(setup):
  """Seeds (data order), learning rates and SD-loss λ in one program (σ under vmap: the
  linear-model test below, cheaper to compile)."""
  u = _unroll(setup["model"].apply, every=K, checkpoint_every=F)
  n = 3
  orders = [U.forget_first_order(6 * B, B, np.arange(B), jax.random.PRNGKey(s), epochs=2)
            for s in range(n)]
  lrs, lams = (0.02, 0.05, 0.1), (0.0, 1.0, 10.0)
  steps = dict(idx=jnp.stack([o[0] for o in orders]), forget=jnp.stack([o[1] for o in orders]),
               lr=jnp.stack([jnp.full((STEPS,), lr) for lr in lrs]))
  params = jax.tree_util.tree_map(lambda a: jnp.stack([a] * n), setup["params"])
  ms = jax.tree_util.tree_map(lambda a: jnp.stack([a] * n), setup["ms"])
  keys = jnp.stack([jax.random.PRNGKey(10 + s) for s in range(n)])
  swept = U.drive(u, params, ms, steps, setup["data"], jnp.asarray(lams), keys,
                  in_axes=(0, 0, 0, None, 0, 0))
  for i in range(n):
    one = U.drive(u, setup["params"], setup["ms"], jax.tree_util.tree_map(lambda a: a[i], steps),
                  setup["data"], lams[i], keys[i])
    for part in ("steps", "chunks"):
      for k, v in one[part].items():
        np.testing.assert_allclose(swept[part][k][i], v, rtol=1e-5, atol=1e-6,
                                   err_msg=f"{part}.{k} run {i}")


def test_single_gradient_cancels_one_plain_sgd_step_least_squares():
  """Linear least squares, plain SGD, one step on B*: w_1 = w_0 - η∇L(w_0; B*), M' = w_0, so
  single-gradient unlearning w_1 + η·g0 is M' to float precision."""
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(64, 5)), jnp.float32)
  y = jnp.asarray(rng.normal(size=(64, 3)), jnp.float32)
  apply_fn = lambda p, s, xb, train: (xb @ p["w"] + p["b"], s)
  mse = lambda pred, target, lam: 0.5 * jnp.mean(jnp.sum(jnp.square(pred - target), -1))
  params = {"w": jnp.asarray(rng.normal(size=(5, 3)), jnp.float32), "b": jnp.zeros(3)}
  u = U.make_unroll(apply_fn, objective=mse)
  steps = dict(idx=jnp.arange(16)[None], forget=jnp.array([True]), lr=jnp.array([0.3]))
  out = U.drive(u, params, {}, steps, dict(x=x, y=y))
  gap = float(out["steps"]["ver_none"][0])
  assert gap > 0.1  # the step moved M
  assert float(out["steps"]["ver_sg"][0]) < 1e-6 * gap
  # the recorded g0 is the least-squares gradient at w_0, by hand
  xb, yb = np.asarray(x[:16], np.float64), np.asarray(y[:16], np.float64)
  resid = xb @ np.asarray(params["w"], np.float64) - yb
  np.testing.assert_allclose(out["final"]["g0"]["w"], xb.T @ resid / 16, rtol=1e-5)
  # several plain-SGD steps: the cancellation is only first order (a nonzero remainder)
  steps = dict(idx=jnp.arange(64).reshape(4, 16), forget=jnp.array([True, False, False, False]),
               lr=jnp.full((4,), 0.3))
  out = U.drive(u, params, {}, steps, dict(x=x, y=y))
  ver = np.asarray(out["steps"]["ver_sg"])
  assert ver[0] < 1e-6 and ver[-1] > 1e-4
  # without momentum the momentum-aware coefficient is the paper's
  np.testing.assert_array_equal(out["steps"]["ver_sg_momentum"], out["steps"]["ver_sg"])


@pytest.mark.parametrize("eigs,want", [((3.0, 1.0, 0.5, -0.2, 0.1, 2.0), 3.0),
                                       ((-4.0, 1.0, 2.0, 0.5, -1.0, 0.3), -4.0)])
def test_power_iteration_recovers_known_top_eigenvalue(eigs, want):
  rng = np.random.default_rng(1)
  q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
  a = jnp.asarray(q @ np.diag(eigs) @ q.T, jnp.float32)
  # a pytree of two leaves (4 + 2 coordinates) and a non-zero minimum
  loss = lambda p: 0.5 * (jnp.concatenate([p["u"], p["v"]]) - 1.0) @ a @ (
      jnp.concatenate([p["u"], p["v"]]) - 1.0)
  params = {"u": jnp.zeros(4), "v": jnp.ones(2)}
  v0 = {"u": jnp.ones(4), "v": jnp.asarray([1.0, -1.0])}
  res = jax.jit(lambda p, v: U.top_eigenvalue(loss, p, v, tol=1e-6, max_iter=500))(params, v0)
  np.testing.assert_allclose(res.eigenvalue, want, rtol=1e-4)
  assert bool(res.converged) and int(res.iterations) < 500
  vec = np.concatenate([res.eigenvector["u"], res.eigenvector["v"]])
  np.testing.assert_allclose(np.abs(vec @ q[:, int(np.argmax(np.abs(eigs)))]), 1.0, rtol=1e-3)
  # σ = |λ| by default; the public code's sqrt(λ) is NaN for a negative one
  assert U.sigma_from_eigenvalue(res.eigenvalue) == pytest.approx(abs(want), rel=1e-4)
  assert np.isnan(U.sigma_from_eigenvalue(-4.0, "sqrt"))
  assert U.sigma_from_eigenvalue(4.0, "sqrt") == 2.0
  # the HVP itself: A v
  hv = U.hvp(loss, params, v0)
  np.testing.assert_allclose(np.concatenate([hv["u"], hv["v"]]),
                             np.asarray(a) @ np.asarray([1, 1, 1, 1, 1, -1.0]), rtol=1e-5)


def test_sd_loss_matches_numpy(setup):
  rng = np.random.default_rng(2)
  z = rng.normal(size=(7, 10)).astype(np.float32) * 3
  labels = rng.integers(0, 10, 7)
  lse = np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1)
  ce = np.mean(lse - z[np.arange(7), labels])
  want = ce + 5.0 * np.sum(np.std(z, axis=1, ddof=1)) / z.size
  np.testing.assert_allclose(U.sd_loss(jnp.asarray(z), jnp.asarray(labels), 5.0), want, rtol=1e-5)
  np.testing.assert_allclose(U.sd_loss(jnp.asarray(z), jnp.asarray(labels), 0.0), ce, rtol=1e-5)
  # equal logits: std 0 with a finite (zero) gradient
  g = jax.grad(lambda zz: U.sd_loss(zz, jnp.asarray(labels), 1.0))(jnp.zeros((7, 10)))
  assert np.isfinite(np.asarray(g)).all()
  # as an objective of train.make_train_step: its reported loss is the SD loss of the batch
  model, x, y = setup["model"], setup["data"]["x"][:32], setup["data"]["y"][:32]
  tx = optax.sgd(0.1)
  st = T.TrainState(step=jnp.int32(0), params=setup["params"], model_state=setup["ms"],
                    opt_state=tx.init(setup["params"]), apply_fn=model.apply, tx=tx)
  _, metrics = jax.jit(T.make_train_step(U.sd_objective(5.0)))(st, {"x": x, "y": y})
  logits = np.asarray(model.apply(setup["params"], setup["ms"], x, True)[0], np.float64)
  yy = np.asarray(y)
  lse = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
  want = np.mean(lse - logits[np.arange(32), yy]) + 5.0 * np.std(logits, 1, ddof=1).sum() / logits.size
  np.testing.assert_allclose(metrics["loss"], want, rtol=1e-5)


def test_unlearning_errors_match_a_python_loop(setup):
  out = _full(setup)
  steps = jax.device_get(out["steps"])
  eig = np.asarray(out["chunks"]["eigenvalue"], np.float64)
  e = U.unlearning_errors(steps, eig, every=K, checkpoint_every=F)
  lr, dw, dc = (np.asarray(steps[k], np.float64) for k in ("lr", "delta_w", "delta_ckpt"))
  acc = 0.0
  for t in range(1, STEPS + 1):
    j = t // K
    sig = abs(eig[j])
    avg = np.mean(np.abs(eig[:j + 1]))
    assert e["e"][t - 1] == pytest.approx(lr[t - 1] ** 2 / 2 * t * dw[t - 1] * sig, rel=1e-9)
    assert e["e_rolling"][t - 1] == pytest.approx(lr[t - 1] ** 2 / 2 * t * dw[t - 1] * avg,
                                                  rel=1e-9)
    seg = t - F * ((t - 1) // F)
    cur = lr[t - 1] ** 2 / 2 * seg * dc[t - 1] * sig
    assert e["e_ckpt"][t - 1] == pytest.approx(acc + cur, rel=1e-9)
    if t % F == 0:
      acc += cur
  # delta_ckpt is the distance to the last checkpoint: at t = 5 (checkpoint 4) from the trajectory
  w = np.asarray(out["steps"]["w"], np.float64)
  np.testing.assert_allclose(dc[4], np.linalg.norm(w[4] - w[3]), rtol=1e-5)
  np.testing.assert_allclose(dc[3], np.linalg.norm(w[3] - np.asarray(U.flatten(setup["params"]))),
                             rtol=1e-5)


def test_python_driver_vmapped_equals_scan_on_a_linear_model():
  """Under vmap over η and seeds, the chunked Python driver gives the scan driver's records, and
  both equal separate runs, σ (a while_loop per member) included."""
  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.normal(size=(48, 4)), jnp.float32)
  y = jnp.asarray(rng.normal(size=(48, 2)), jnp.float32)
  apply_fn = lambda p, s, xb, train: (xb @ p["w"], s)
  mse = lambda pred, target, lam: 0.5 * jnp.mean(jnp.sum(jnp.square(pred - target), -1))
  u = U.make_unroll(apply_fn, objective=mse, momentum=0.5, record="every", every=2,
                    checkpoint_every=2, sigma=True, inner_unroll=True)
  n = 2
  params = {"w": jnp.asarray(rng.normal(size=(n, 4, 2)), jnp.float32)}
  idx = jnp.stack([jnp.asarray(rng.permutation(48)[:48].reshape(6, 8)) for _ in range(n)])
  steps = dict(idx=idx, forget=jnp.zeros((n, 6), bool).at[:, 0].set(True),
               lr=jnp.asarray([[0.1] * 6, [0.3] * 6], jnp.float32))
  data = dict(x=x, y=y, hx=x[:16], hy=y[:16])
  keys = jnp.stack([jax.random.PRNGKey(0), jax.random.PRNGKey(1)])
  args = (params, {}, steps, data, jnp.zeros(n), keys)
  scan = U.drive(u, *args, in_axes=(0, None, 0, None, 0, 0))
  py = U.drive(u, *args, in_axes=(0, None, 0, None, 0, 0), driver="python")
  for i in range(n):  # the vmapped sweep (power iteration included) equals separate runs
    one = U.drive(u, {"w": params["w"][i]}, {}, jax.tree_util.tree_map(lambda a: a[i], steps),
                  data, 0.0, keys[i])
    for part in ("steps", "chunks"):
      for k, v in one[part].items():
        np.testing.assert_allclose(scan[part][k][i], v, rtol=1e-5, atol=1e-7, err_msg=k)
  for part in ("steps", "chunks"):
    for k, v in scan[part].items():
      np.testing.assert_allclose(py[part][k], v, rtol=1e-5, atol=1e-7, err_msg=k)
  assert scan["chunks"]["w"].shape == (n, 3, 8)
  # the Hessian of this least-squares loss is (X^T X / m) ⊗ I: its top eigenvalue, by numpy
  hx = np.asarray(x[:16], np.float64)
  np.testing.assert_allclose(scan["chunks"]["eigenvalue"], np.linalg.eigvalsh(hx.T @ hx / 16)[-1],
                             rtol=1e-3)
