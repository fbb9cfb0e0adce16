"""Decision regions: the plane construction, chunked/stacked classification and the change
fraction, against hand-built classifiers and numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from unlearn_jax import decision_regions as dr
from unlearn_jax.models import build_model, init_model


def test_plane_is_orthonormal_and_anchors_sit_at_their_coordinates():
  rng = np.random.default_rng(0)
  x1, x2, x3 = rng.normal(size=(3, 4, 5, 1))
  pl = dr.plane(x1, x2, x3)
  a, b = pl.a.ravel(), pl.b.ravel()
  assert a @ a == pytest.approx(1) and b @ b == pytest.approx(1) and abs(a @ b) < 1e-12
  # x_i = x1 + u_i a + v_i b for the three anchors
  for x, (u, v) in zip((x1, x2, x3), pl.anchors):
    np.testing.assert_allclose(pl.origin + u * pl.a + v * pl.b, x, atol=1e-12)
  # by hand: u2 = |x2 - x1|, v2 = 0; u3 = <x3 - x1, a>
  assert pl.anchors[0].tolist() == [0, 0] and pl.anchors[1, 1] == 0
  assert pl.anchors[1, 0] == pytest.approx(np.linalg.norm(x2 - x1))
  assert pl.anchors[2, 0] == pytest.approx((x3 - x1).ravel() @ (x2 - x1).ravel()
                                           / np.linalg.norm(x2 - x1))
  with pytest.raises(ValueError, match="x2 equals x1"):
    dr.plane(x1, x1, x3)
  with pytest.raises(ValueError, match="on the line"):
    dr.plane(x1, x2, x1 + 2 * (x2 - x1))


def test_grid_covers_the_bounding_box_with_margin():
  pl = dr.plane(np.zeros(3), np.array([2.0, 0, 0]), np.array([0.5, 1.0, 0]))
  g = dr.plane_grid(pl, 5, margin=0.25)
  # box u in [0, 2], v in [0, 1]; margin 0.25 of the extent on each side
  np.testing.assert_allclose([g.u[0], g.u[-1], g.v[0], g.v[-1]], [-0.5, 2.5, -0.25, 1.25])
  assert g.points.shape == (25, 3) and g.coords.shape == (25, 2)
  np.testing.assert_allclose(g.points[:, :2], g.coords, atol=1e-6)  # this plane is z = 0
  np.testing.assert_allclose(g.points[:, 2], 0)
  with pytest.raises(ValueError, match="resolution must be >= 2"):
    dr.plane_grid(pl, 1)


def threshold_apply(params, model_state, x, train):
  """Class 1 iff x[0] > t: logits (t - x0, x0 - t)."""
  del train
  s = x[:, 0] - params["t"]
  return jnp.stack([-s, s], -1), model_state


def test_change_fraction_of_two_threshold_classifiers():
  # The plane through (-1,-1), (1,-1), (-1,1) is the input plane itself: a = e1, b = e2 and the
  # margin-0 grid covers [-1, 1]^2 with u = -1, -0.98, ..., 1 (101 points per axis).
  pl = dr.plane(np.array([-1.0, -1.0]), np.array([1.0, -1.0]), np.array([-1.0, 1.0]))
  g = dr.plane_grid(pl, 101, margin=0.0)
  models = {"t": jnp.array([-0.01, 0.51])}  # two models stacked
  labels = dr.predict_labels(threshold_apply, models, {}, g.points, stacked=True, chunk_size=64)
  assert labels.shape == (2, 101 * 101)
  # they disagree where -0.01 < x0 <= 0.51: u = 0.00, 0.02, ..., 0.50, 26 of 101 columns
  assert dr.change_fraction(labels[0], labels[1]) == pytest.approx(26 / 101)
  assert dr.change_fraction(labels[0], labels[0]) == 0
  # within radius 0.3 of the input (0.25, 0), at plane coordinates (1.25, 1) from x1 = (-1, -1)
  centre = np.array([[1.25, 1.0]])
  near = np.linalg.norm(g.points - np.array([0.25, 0.0]), axis=1) <= 0.3
  x0 = g.points[near, 0]
  want = np.mean((x0 > -0.01) != (x0 > 0.51))
  got = dr.change_within_radius(labels[0], labels[1], g.coords, centre, 0.3)
  assert got == pytest.approx(want) and want > 0.9
  assert np.isnan(dr.change_within_radius(labels[0], labels[1], g.coords, [[10.0, 10.0]], 0.1))


def mlp_models(n):
  model = build_model("mlp", 5, width=0.25, norm="none")
  states = [init_model(model, jax.random.PRNGKey(i), (4, 4, 1)) for i in range(n)]
  return model, states


def test_chunked_equals_unchunked_and_stacked_equals_separate():
  model, states = mlp_models(3)
  x = np.random.default_rng(1).normal(size=(50, 4, 4, 1)).astype(np.float32)
  params, ms = states[0]
  whole = dr.predict_labels(model.apply, params, ms, x, chunk_size=1000)
  for chunk in (1, 7, 50):
    np.testing.assert_array_equal(dr.predict_labels(model.apply, params, ms, x, chunk_size=chunk),
                                  whole)
  # by hand: argmax of apply
  np.testing.assert_array_equal(whole, np.argmax(model.apply(params, ms, x, False)[0], -1))
  sp, sms = dr.stack_models(states)
  for axis in ("vmap", "unrolled"):
    stacked = dr.predict_labels(model.apply, sp, sms, x, chunk_size=16, stacked=True,
                                model_axis=axis)
    separate = np.stack([dr.predict_labels(model.apply, p, m, x, chunk_size=16)
                         for p, m in states])
    np.testing.assert_array_equal(stacked, separate)


def test_region_labels_and_triplets(tmp_path):
  model, states = mlp_models(2)
  x = np.random.default_rng(2).normal(size=(20, 4, 4, 1)).astype(np.float32)
  trip = dr.sample_triplets(np.arange(5, 20), 3, seed=0)
  assert trip.shape == (3, 3) and all(len(set(t)) == 3 for t in trip) and trip.min() >= 5
  np.testing.assert_array_equal(trip, dr.sample_triplets(np.arange(5, 20), 3, seed=0))
  with pytest.raises(ValueError, match=">= 3 examples"):
    dr.sample_triplets([1, 2], 1, seed=0)
  sp, sms = dr.stack_models(states)
  out = dr.region_labels(model.apply, {"a": (sp, sms)}, x, trip, resolution=6, chunk_size=10)
  assert out["labels"]["a"].shape == (3, 2, 36) and out["coords"].shape == (3, 36, 2)
  # the grid of triplet 0 classified directly
  pl = dr.plane(*x[trip[0]])
  g = dr.plane_grid(pl, 6)
  np.testing.assert_array_equal(out["labels"]["a"][0, 1],
                                np.argmax(model.apply(*states[1], g.points, False)[0], -1))
  path = dr.plot_label_maps([{"maps": {"original": out["labels"]["a"][0, 0],
                                       "unlearned": out["labels"]["a"][0, 1]},
                              "resolution": 6, "anchors": out["anchors"][0], "u": g.u, "v": g.v,
                              "label": "near"}], tmp_path / "maps.png", num_classes=5)
  assert path.exists() and path.stat().st_size > 1000
