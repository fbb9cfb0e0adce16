"""Execute colabs/quickstart.ipynb top to bottom, as CI does (`tests/notebooks.py`: a throwaway
kernelspec running this interpreter, in a temporary folder)."""

from pathlib import Path

import pytest

from notebooks import images, run_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "colabs" / "quickstart.ipynb"
KERNEL = "unlearn-jax-test"


@pytest.mark.slow
def test_quickstart_notebook_runs(tmp_path, monkeypatch):
  nb, outputs, run_dir = run_notebook(NOTEBOOK, tmp_path, monkeypatch, KERNEL)
  assert "2/2 methods ok" in outputs, outputs[-3000:]
  assert "oracle" in outputs and "neggrad_plus" in outputs
  pngs = images(nb)
  assert len(pngs) >= 2  # the saved plot and the inline histogram
  workdir = run_dir / "quickstart_workdir"
  assert (workdir / "report.md").exists() and (workdir / "plots" / "forget_vs_test.png").exists()
