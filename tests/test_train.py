import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from unlearn_jax import train as T
from unlearn_jax.models import build_model

EPOCHS, BATCH = 2, 32


_MODELS = {}  # one Model object per name, so its compiled init is reused across tests


def make(model_name="cnn", width=0.25, steps=EPOCHS * (256 // BATCH)):
  model = _MODELS.setdefault((model_name, width), build_model(model_name, 10, width=width))
  tx = T.make_optimizer(learning_rate=0.05, total_steps=steps, weight_decay=5e-4)
  return model, tx


def run_single(model, tx, x, y, seed):
  state = T.create_train_state(model, tx, jax.random.PRNGKey(seed), x.shape[1:])
  return T.fit(state, x, y, key=jax.random.PRNGKey(100 + seed), epochs=EPOCHS, batch_size=BATCH)


def max_abs_diff(a, b):
  return max(float(jnp.max(jnp.abs(u - v))) for u, v in
             zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


def test_training_learns(digits):
  model, tx = make(steps=10 * (len(digits.train) // 64))
  state = T.create_train_state(model, tx, jax.random.PRNGKey(0), digits.image_shape)
  before = T.evaluate(state, digits.test.x, digits.test.y)["accuracy"]
  state = T.fit(state, digits.train.x, digits.train.y, key=jax.random.PRNGKey(1), epochs=10,
                batch_size=64)
  after = T.evaluate(state, digits.test.x, digits.test.y)
  assert float(before) < 0.3 and float(after["accuracy"]) > 0.9
  assert int(state.step) == 10 * (len(digits.train) // 64)


@pytest.mark.parametrize("model_name, axis, atol", [
    ("cnn", "vmap", 1e-4),     # batched (grouped) conv sums in another order: float tolerance
    ("cnn", "unrolled", 1e-6),
    ("mlp", "vmap", 1e-5),
])
def test_stacked_seeds_equal_sequential_runs(digits_small, model_name, axis, atol):
  x, y = digits_small
  model, tx = make(model_name)
  seeds = (0, 1, 2)
  stacked = T.create_train_state(model, tx, jnp.stack([jax.random.PRNGKey(s) for s in seeds]),
                                 x.shape[1:])
  stacked = T.fit(stacked, x, y, key=jnp.stack([jax.random.PRNGKey(100 + s) for s in seeds]),
                  epochs=EPOCHS, batch_size=BATCH, model_axis=axis)
  assert T.num_models(stacked) == 3
  stacked_eval = T.evaluate(stacked, x, y, model_axis=axis)
  for i, s in enumerate(seeds):
    single = run_single(model, tx, x, y, s)
    assert max_abs_diff(T.unstack(stacked, i).params, single.params) < atol
    assert max_abs_diff(T.unstack(stacked, i).model_state, single.model_state) < atol
    np.testing.assert_allclose(stacked_eval["loss"][i], T.evaluate(single, x, y)["loss"],
                               rtol=1e-4)
  # different seeds really differ (init and data order)
  assert max_abs_diff(T.unstack(stacked, 0).params, T.unstack(stacked, 1).params) > 1e-2


def test_data_order_is_a_fresh_permutation_per_epoch():
  key = jax.random.PRNGKey(0)
  p0 = np.asarray(T.epoch_permutations(key, 0, n=50, stacked=False))
  p1 = np.asarray(T.epoch_permutations(key, 1, n=50, stacked=False))
  assert sorted(p0) == list(range(50)) and sorted(p1) == list(range(50))
  assert not np.array_equal(p0, p1)
  np.testing.assert_array_equal(p0, T.epoch_permutations(key, 0, n=50, stacked=False))


def test_deterministic_same_seed_same_numbers(digits_small):
  x, y = digits_small
  model, tx = make()
  a, b = run_single(model, tx, x, y, 0), run_single(model, tx, x, y, 0)
  assert max_abs_diff(a.params, b.params) == 0.0


def test_optimizer_matches_pytorch_style_sgd_by_hand():
  # One parameter, grad g: buf = g + wd*w; w -= lr*buf; then buf = mu*buf + (g + wd*w).
  tx = T.make_optimizer(learning_rate=0.1, total_steps=10, momentum=0.9, weight_decay=0.01,
                        schedule="constant")
  w = jnp.array([1.0])
  state = tx.init(w)
  g = jnp.array([0.5])
  upd, state = tx.update(g, state, w)
  w1 = optax.apply_updates(w, upd)
  np.testing.assert_allclose(w1, 1.0 - 0.1 * (0.5 + 0.01 * 1.0), rtol=1e-6)
  upd, state = tx.update(g, state, w1)
  w2 = optax.apply_updates(w1, upd)
  buf = 0.9 * (0.5 + 0.01) + (0.5 + 0.01 * float(w1[0]))
  np.testing.assert_allclose(w2, float(w1[0]) - 0.1 * buf, rtol=1e-6)


def test_cosine_schedule_reaches_final_fraction():
  tx = T.make_optimizer(learning_rate=1.0, total_steps=4, momentum=0.0, schedule="cosine",
                        final_lr_fraction=0.01)
  w, g = jnp.array([0.0]), jnp.array([1.0])
  state, lrs = tx.init(w), []
  for _ in range(5):
    upd, state = tx.update(g, state, w)
    lrs.append(-float(upd[0]))
  np.testing.assert_allclose(lrs, [1.0, 0.5 * (1 + np.cos(np.pi / 4)) * 0.99 + 0.01,
                                   0.505, 0.5 * (1 + np.cos(3 * np.pi / 4)) * 0.99 + 0.01, 0.01],
                             rtol=1e-5)


@pytest.mark.parametrize("kwargs, match", [
    (dict(schedule="linear"), "unknown learning-rate schedule"),
    (dict(learning_rate=0.0), "learning_rate must be > 0"),
])
def test_bad_optimizer_arguments(kwargs, match):
  args = dict(learning_rate=0.1, total_steps=10) | kwargs
  with pytest.raises(ValueError, match=match):
    T.make_optimizer(**args)


def test_bad_batch_size_and_model_axis(digits_small):
  x, y = digits_small
  model, tx = make()
  state = T.create_train_state(model, tx, jax.random.PRNGKey(0), x.shape[1:])
  with pytest.raises(ValueError, match="exceeds the 256 training examples"):
    T.fit(state, x, y, key=jax.random.PRNGKey(0), epochs=1, batch_size=1000)
  with pytest.raises(ValueError, match="batch_size must be > 0"):
    T.fit(state, x, y, key=jax.random.PRNGKey(0), epochs=1, batch_size=0)
  with pytest.raises(ValueError, match="unknown model_axis strategy"):
    T.resolve_model_axis("pmap")


def test_predict_pads_last_batch(digits_small):
  x, y = digits_small
  model, tx = make()
  state = T.create_train_state(model, tx, jax.random.PRNGKey(0), x.shape[1:])
  full = T.predict(state, x, batch_size=1000)
  chunked = T.predict(state, x, batch_size=100)  # 100, 100, 56 (padded)
  assert chunked.shape == (256, 10)
  np.testing.assert_allclose(full, chunked, rtol=1e-5, atol=1e-6)
