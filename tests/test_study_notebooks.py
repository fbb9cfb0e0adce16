"""Execute colabs/del_localization.ipynb and colabs/unroll_sgd.ipynb top to bottom, as CI does
(`tests/notebooks.py`): each runs its study's `quick` config and shows the claims, the main table
and the plots."""

from pathlib import Path

import pytest

from notebooks import images, run_notebook

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_del_localization_notebook_runs(tmp_path, monkeypatch):
  nb, outputs, run_dir = run_notebook(ROOT / "colabs" / "del_localization.ipynb", tmp_path,
                                      monkeypatch, "unlearn-jax-test-del")
  assert "del_localization digits/mlp x3 seeds" in outputs and "claims held" in outputs
  assert "DEL at α = 0.3 matches the oracle on forget accuracy" in outputs
  assert "## (a)" in outputs and "% selected per seed" in outputs
  assert len(images(nb)) >= 2
  assert (run_dir / "del_localization_workdir" / "report.md").exists()


@pytest.mark.slow
def test_unroll_sgd_notebook_runs(tmp_path, monkeypatch):
  nb, outputs, run_dir = run_notebook(ROOT / "colabs" / "unroll_sgd.ipynb", tmp_path,
                                      monkeypatch, "unlearn-jax-test-unroll")
  assert "unroll_sgd digits/mlp | 4 runs x 8 steps" in outputs and "claims held" in outputs
  assert "unlearning error correlates strongly with verification error" in outputs
  assert "32 points" in outputs
  rel = float(outputs.split("max relative difference to the study's e:")[1].split()[0])
  assert rel < 1e-4
  assert len(images(nb)) == 2
  assert (run_dir / "unroll_sgd_workdir" / "report.md").exists()
