"""Many tuning candidates in one program: the vectorized tuner selects what the sequential one
selects, with the same errors and objectives; random search; candidate groups; PerModel."""

import shutil

import numpy as np
import pytest

from experiments.configs import unlearn as unlearn_config
from unlearn_jax import io, tuning
from unlearn_jax.methods.base import PerModel
from unlearn_jax.pipelines import tune

SPACES = {
    "finetune": {"learning_rate": (0.01, 0.2), "epochs": (1, 2)},  # epochs: structural
    "neggrad_plus": {"beta": (0.3, 0.9)},
    "l1_sparse": {"gamma": (1e-5, 3e-3)},
    "scrub": {"alpha": (0.001, 0.5)},
}


def _config(vectorize, model_axis="auto"):
  config = unlearn_config.get_config("dataset=digits,model=mlp,seeds=2,oracle_seeds=2,epochs=2,"
                                     "methods=" + "+".join(SPACES))
  config.progress = False
  config.train.model_axis = model_axis
  config.method_configs.neggrad_plus.epochs = 1
  config.method_configs.scrub.epochs = 2
  config.method_configs.scrub.max_steps = 1
  for name, space in SPACES.items():
    for k, v in space.items():
      config.tune.space[name][k] = v
  config.tune.vectorize = vectorize
  config.tune.lams = (0.2, 0.4, 0.6)
  return config


@pytest.mark.slow
# vmap: the quicker of the two model axes to compile; `unrolled` (CPU's auto) agrees exactly
# too (run with model_axis="unrolled" by hand: about twice as long).
@pytest.mark.parametrize("model_axis", ["vmap"])
def test_vectorized_tuning_equals_sequential(tmp_path, model_axis, monkeypatch):
  seq = tune.run_tune(_config(False, model_axis), tmp_path)
  shutil.move(tmp_path / "tuning", tmp_path / "tuning_seq")
  calls = []
  original_group = tune._run_group
  monkeypatch.setattr(tune, "_run_group", lambda *a, **k: calls.append(len(a[2])) or
                      original_group(*a, **k))
  vec = tune.run_tune(_config(True, model_axis), tmp_path)
  # every grid ran as stacked programs: (2 + 2) + 2 + 2 + 2 candidates in 5 programs
  assert sorted(calls) == [2, 2, 2, 2, 2]
  for name in SPACES:
    a, b = seq[name], vec[name]
    assert [r["point"] for r in a["rows"]] == [r["point"] for r in b["rows"]]
    for ra, rb in zip(a["rows"], b["rows"]):
      for k in ("err_validation", "err_forget", "diverged"):
        assert ra[k] == rb[k], (name, ra["point"], k)
      assert ra["objective"] == rb["objective"]
      assert ra["objective_by_lam"] == rb["objective_by_lam"]
    assert a["best"]["point"] == b["best"]["point"]
    for lam in ("0.2", "0.4", "0.6"):
      assert a["best_by_lam"][lam]["point"] == b["best_by_lam"][lam]["point"]
    # λ scored by hand from the recorded errors
    r = b["rows"][0]
    j = np.mean([0.4 * v + 0.6 * abs(f - v) for v, f in zip(r["err_validation"], r["err_forget"])])
    assert r["objective_by_lam"]["0.6"]["objective"] == pytest.approx(j)
  # the candidates really differ (a test of equal rows must not pass on identical runs)
  errs = {tuple(r["err_validation"]) for r in vec["finetune"]["rows"]}
  assert len(errs) > 1
  best = io.read_json(tmp_path / "tuning" / "scrub_best.json")
  assert set(best["best_by_lam"]) == {"0.2", "0.4", "0.6"}


def test_random_points():
  space = {"learning_rate": ("log", 1e-3, 1e-1), "epochs": (1, 2, 3)}
  a = tuning.random_points(space, 5, seed=0)
  assert a == tuning.random_points(space, 5, seed=0) and a != tuning.random_points(space, 5, 1)
  assert len(a) == 5 and all(1e-3 <= p["learning_rate"] <= 1e-1 and p["epochs"] in (1, 2, 3)
                             for p in a)
  small = tuning.random_points({"beta": (0.1, 0.2)}, 10, seed=0)  # at most the grid
  assert sorted(p["beta"] for p in small) == [0.1, 0.2]
  with pytest.raises(ValueError, match="must be"):
    tuning.random_points({"lr": ("log", 0.0, 1.0)}, 2, seed=0)
  with pytest.raises(ValueError, match="num_samples >= 1"):
    tuning.random_points(space, 0, seed=0)


def test_groups_and_stacking():
  cfgs = [dict(lr=0.1, epochs=1), dict(lr=0.2, epochs=2), dict(lr=0.3, epochs=1),
          dict(lr=0.4, epochs=1)]
  assert tuning.vector_groups(cfgs, ("lr",)) == [[0, 2, 3], [1]]
  assert tuning.vector_groups(cfgs, ("lr",), max_group=2) == [[0, 2], [3], [1]]
  assert tuning.vector_groups(cfgs, ()) == [[0], [1], [2], [3]]
  out = tuning.stack_candidates([cfgs[0], cfgs[2]], ("lr",), num_seeds=2)
  assert out["epochs"] == 1 and out["lr"].values == (0.1, 0.1, 0.3, 0.3)
  with pytest.raises(ValueError, match="differ in 'epochs'"):
    tuning.stack_candidates(cfgs[:2], ("lr",), 2)
  assert tuning.split_models([1, 2, 3, 4, 5, 6], 3) == [[1, 2], [3, 4], [5, 6]]
  p = PerModel([0.5, 0.7])
  assert float(p) == 0.5 and p != 0.5 and hash(p) != hash(0.5) and p == PerModel((0.5, 0.7))
  tiled = tuning.tile_models({"w": np.arange(4).reshape(2, 2)}, 3)
  np.testing.assert_array_equal(tiled["w"][:, 0], [0, 2, 0, 2, 0, 2])
