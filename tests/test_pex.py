"""unlearn_jax.pex: per-example gradients against a Python loop of jax.grad (and numpy)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from unlearn_jax import pex
from unlearn_jax.models import build_model, init_model


def _bn_model(seed=0):
  """An MLP with BatchNorm whose running statistics are far from (0, 1), so inference mode
  differs from training mode and from an un-normalised net."""
  model = build_model("mlp", 3, width=1 / 32, norm="batch")  # hidden 8, 8
  params, ms = init_model(model, jax.random.PRNGKey(seed), (5, 1, 1))
  rng = np.random.default_rng(seed)
  stats = lambda path, a: jnp.asarray(rng.uniform(0.5, 2.0, a.shape) if "var" in str(path)
                                      else rng.normal(0, 0.3, a.shape), a.dtype)
  ms = jax.tree_util.tree_map_with_path(stats, ms)
  return model, params, ms


def _data(n=7, seed=1):
  rng = np.random.default_rng(seed)
  return (jnp.asarray(rng.normal(size=(n, 5, 1, 1)), jnp.float32),
          jnp.asarray(rng.integers(0, 3, n), jnp.int32))


def _loop(loss, params, x, y, ms):
  """Reference: one jax.grad per example in a Python loop."""
  return [jax.grad(loss)(params, (x[i], y[i]), ms) for i in range(len(x))]


def _close(a, b, **kw):
  for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    np.testing.assert_allclose(np.asarray(u), np.asarray(v), **kw)


@pytest.mark.parametrize("chunk", [None, 1, 3, 7, 50])
def test_per_example_gradients_equal_a_loop_of_jax_grad_with_batchnorm(chunk):
  model, params, ms = _bn_model()
  x, y = _data()
  loss = pex.inference_loss(model.apply)
  g = pex.per_example_gradients(loss, params, (x, y), consts=ms, chunk_size=chunk)
  ref = _loop(loss, params, x, y, ms)
  for i in range(len(x)):
    _close(jax.tree_util.tree_map(lambda a: a[i], g), ref[i], rtol=1e-5, atol=1e-6)
  # inference mode: the running statistics are used (training mode would give other gradients)
  def train_mode_loss(p, s):
    logits, _ = model.apply(p, s, x, True)  # batch statistics of the whole batch
    return -jax.nn.log_softmax(logits[0])[y[0]]
  g_train = jax.grad(train_mode_loss)(params, ms)
  assert np.abs(np.asarray(ref[0]["dense0"]["kernel"])).max() > 1e-3
  assert not np.allclose(np.asarray(g_train["dense0"]["kernel"]),
                         np.asarray(ref[0]["dense0"]["kernel"]), atol=1e-4)


def test_reductions_equal_numpy_on_the_loop_and_chunked_equals_unchunked():
  model, params, ms = _bn_model(2)
  x, y = _data(11, seed=4)
  loss = pex.inference_loss(model.apply)
  ref = _loop(loss, params, x, y, ms)
  stack = lambda f: jax.tree_util.tree_map(lambda *a: f(np.stack([np.asarray(v, np.float64)
                                                                  for v in a])), *ref)
  want = {"sum": stack(lambda a: a.sum(0)), "abs_sum": stack(lambda a: np.abs(a).sum(0)),
          "sq_sum": stack(lambda a: (a ** 2).sum(0)),
          "norm": np.sqrt([sum(float(np.sum(np.asarray(l, np.float64) ** 2))
                               for l in jax.tree_util.tree_leaves(g)) for g in ref])}
  outs = [pex.gradient_reductions(loss, params, (x, y), consts=ms, chunk_size=c,
                                  reductions=pex.REDUCTIONS) for c in (None, 4, 1)]
  for out in outs:
    for k in ("sum", "abs_sum", "sq_sum"):
      _close(out[k], want[k], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["norm"], want["norm"], rtol=1e-5)
    assert out["norm"].shape == (11,)
  _close(outs[0], outs[1], rtol=1e-5, atol=1e-7)  # chunked (with a padded last chunk) = one chunk
  with pytest.raises(ValueError, match="reduction"):
    pex.gradient_reductions(loss, params, (x, y), consts=ms, reductions=("max",))
  with pytest.raises(ValueError, match="chunk_size"):
    pex.gradient_reductions(loss, params, (x, y), consts=ms, chunk_size=0)


def test_stacked_states_equal_separate_models_and_default_chunk_follows_the_budget():
  model, p0, s0 = _bn_model(0)
  _, p1, s1 = _bn_model(1)
  x, y = _data(6)
  loss = pex.inference_loss(model.apply)
  stack = lambda a, b: jax.tree_util.tree_map(lambda u, v: jnp.stack([u, v]), a, b)
  out = pex.gradient_reductions(loss, stack(p0, p1), (x, y), consts=stack(s0, s1), stacked=True,
                                reductions=("sum", "norm"), chunk_size=4)
  for i, (p, s) in enumerate(((p0, s0), (p1, s1))):
    one = pex.gradient_reductions(loss, p, (x, y), consts=s, reductions=("sum", "norm"))
    _close(jax.tree_util.tree_map(lambda a: a[i], out["sum"]), one["sum"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["norm"][i], one["norm"], rtol=1e-5)
  g = pex.per_example_gradients(loss, stack(p0, p1), (x, y), consts=stack(s0, s1), stacked=True,
                                chunk_size=4)
  assert jax.tree_util.tree_leaves(g)[0].shape[:2] == (2, 6)
  # a plain loss without constants works too
  plain = lambda p, ex: jnp.sum(p["w"] * ex) ** 2
  gp = pex.per_example_gradients(plain, {"w": jnp.ones(3)}, jnp.arange(6.0).reshape(2, 3))
  np.testing.assert_allclose(gp["w"], [[0, 6, 12], [72, 96, 120]])  # 2 (w·e) e
  # chunk from the memory budget: 4 bytes x P x (1 + activation factor 3) per example and model
  p = sum(int(np.size(l)) for l in jax.tree_util.tree_leaves(p0))
  assert pex.default_chunk_size(p0, 1000, memory_budget=16 * p * 10) == 10
  assert pex.default_chunk_size(stack(p0, p1), 1000, stacked=True,
                                memory_budget=16 * p * 10) == 5
  assert pex.default_chunk_size(p0, 1000, memory_budget=1) == 1
  assert pex.default_chunk_size(p0, 7) == 7
