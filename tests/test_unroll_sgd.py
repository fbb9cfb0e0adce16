"""The unroll-SGD correlation study end to end on its `quick` config (in-process launcher, real
files), its resume, and its bad inputs."""

import csv

import numpy as np
import pytest

import bad_inputs as bi
from unlearn_jax import io
from unlearn_jax.pipelines import unroll_sgd

CONFIG = bi.CONFIGS / "unroll_sgd.py"


def _run(argv):
  return bi.run_launcher_module("experiments.unroll_sgd", CONFIG, argv)


@pytest.mark.slow
def test_quick_study_end_to_end_and_resume(tmp_path, monkeypatch):
  wd = tmp_path / "unroll"
  argv = [f"--config={CONFIG}:quick", "--config.progress=False", f"--workdir={wd}"]
  rc, out, err = _run(argv)
  assert rc == 0, err
  assert out.startswith("unroll_sgd digits/mlp | 4 runs x 8 steps") and "claims held" in out
  res = io.read_json(wd / "results.json")
  assert res["num_runs"] == 4 and res["num_points"] == 32 and res["steps"] == 8
  report = (wd / "report.md").read_text()
  for part in ("## Headline claims", "Pearson", "Spearman", "## SD loss", "plots/scatter.png"):
    assert part in report
  assert {c["claim"] for c in res["claims"]} >= {
      "unlearning error correlates strongly with verification error (within one η)",
      "the SD loss (λ = 1) lowers the verification error",
      "single-gradient unlearning lowers the verification error"}
  by = {c["claim"]: c for c in res["claims"]}
  # 2 seeds x 1 η: two pairs cannot reach p <= 0.05 (smallest p 1/4): never "held"
  sd = by["the SD loss (λ = 1) lowers the verification error"]
  assert sd["n_pairs"] == 2 and sd["verdict"] in ("uninformative", "not held")
  # the baseline ‖w_t − w_0‖ is the control of the correlation claim
  corr = by["unlearning error correlates strongly with verification error (within one η)"]
  assert corr["control_value"] == pytest.approx(max(
      res["within_lr"]["0.05"]["delta_w|ver_sg"], res["within_lr"]["0.05"]["t|ver_sg"]))
  for name in ("scatter", "curves", "sd"):
    assert (wd / "plots" / f"{name}.png").stat().st_size > 1000
  # every point of results.csv: e = η²/2 · t · ||w_t - w_0|| · σ, and the headline r from them
  rows = list(csv.DictReader(open(wd / "results.csv")))
  assert len(rows) == 32
  col = lambda k: np.asarray([float(r[k]) for r in rows])
  np.testing.assert_allclose(col("e"), col("lr") ** 2 / 2 * col("t") * col("delta_w")
                             * col("sigma"), rtol=1e-4)
  c = res["correlations"]["e|ver_sg"]
  assert c["pearson"] == pytest.approx(np.corrcoef(col("e"), col("ver_sg"))[0, 1], abs=1e-4)
  # the single-gradient verification error is below doing nothing on every final step
  rec = np.load(wd / "unroll" / "lam_0.npz")
  assert (rec["steps_ver_sg"][:, -1] < rec["steps_ver_none"][:, -1]).all()
  assert rec["steps_forget"][:, 0].all() and not rec["steps_forget"][:, 1:].any()

  # a second run reuses the pretrained models and the unroll records: same report
  def fail(*args, **kwargs):
    raise AssertionError("recomputed a finished stage")
  monkeypatch.setattr(unroll_sgd, "sweep_lambda", fail)
  rc, out2, err = _run(argv)
  assert rc == 0, err
  assert io.read_json(wd / "results.json")["correlations"] == res["correlations"]
  # a different sweep in the same workdir is refused, nothing changed
  before = (wd / "config.json").read_text()
  rc, _, err = _run([*argv, "--config.sweep.learning_rates=0.1"])
  assert rc == 2 and "different config" in err and (wd / "config.json").read_text() == before


@pytest.mark.parametrize("args,field", [
    (["--config.sweep.lambdas=-1"], "config.sweep.lambdas"),
    (["--config.sweep.learning_rates=0,0.1"], "config.sweep.learning_rates"),
    (["--config.sweep.sigma_form=log"], "config.sweep.sigma_form"),
    (["--config.sweep.batch_size=5000"], "config.sweep.batch_size"),
    (["--config.sweep.sigma_every=100"], "config.sweep.sigma_every"),
    (["--config.pretrain.epochs=0"], "config.pretrain.epochs"),
])
def test_bad_inputs_are_one_line_errors_and_write_nothing(tmp_path, args, field):
  wd = tmp_path / "wd"
  rc, out, err = _run([f"--config={CONFIG}:quick", "--config.progress=False", f"--workdir={wd}",
                       *args])
  assert rc == 2, err
  assert err.startswith("error: ") and err.count("\n") == 1 and field in err, err
  assert not wd.exists()


def test_bad_config_argument():
  rc, _, err = _run([f"--config={CONFIG}:fast", "--workdir=/tmp/never"])
  assert rc == 2 and "valid keys: quick" in err
