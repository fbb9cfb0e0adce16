"""Execute colabs/width_sweep.ipynb top to bottom, as CI does (`tests/notebooks.py`)."""

from pathlib import Path

import pytest

from notebooks import images, run_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "colabs" / "width_sweep.ipynb"
KERNEL = "unlearn-jax-test-width"


@pytest.mark.slow
def test_width_sweep_notebook_runs(tmp_path, monkeypatch):
  nb, outputs, run_dir = run_notebook(NOTEBOOK, tmp_path, monkeypatch, KERNEL)
  assert "width sweep mlp on digits: widths 0.0625/0.25 x 2 goals x 2 methods" in outputs
  assert "claims held" in outputs and "scrub" in outputs and "differ on" in outputs
  pngs = images(nb)
  assert len(pngs) == 2
  assert (run_dir / "width_sweep_workdir" / "report.md").exists()
