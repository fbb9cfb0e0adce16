"""Execute colabs/width_sweep.ipynb top to bottom, as CI does (the kernel setup of
tests/test_notebook.py: a throwaway kernelspec running this interpreter)."""

import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "colabs" / "width_sweep.ipynb"
KERNEL = "unlearn-jax-test-width"


@pytest.mark.slow
def test_width_sweep_notebook_runs(tmp_path, monkeypatch):
  nbformat = pytest.importorskip("nbformat")
  nbclient = pytest.importorskip("nbclient")
  pytest.importorskip("ipykernel")
  spec = tmp_path / "jupyter" / "kernels" / KERNEL
  spec.mkdir(parents=True)
  (spec / "kernel.json").write_text(json.dumps({
      "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
      "display_name": "unlearn-jax (test)", "language": "python"}))
  monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
  monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
      [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
  run_dir = tmp_path / "run"
  run_dir.mkdir()
  nb = nbformat.read(NOTEBOOK, as_version=4)
  client = nbclient.NotebookClient(nb, timeout=900, kernel_name=KERNEL,
                                   resources={"metadata": {"path": str(run_dir)}})
  client.execute()
  outputs = "\n".join(o.get("text", "") for cell in nb.cells if cell.cell_type == "code"
                      for o in cell.get("outputs", []) if o.get("output_type") == "stream")
  assert "width sweep mlp on digits: widths 0.0625/0.25 x 2 goals x 2 methods" in outputs
  assert "claims held" in outputs and "scrub" in outputs and "differ on" in outputs
  images = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
            if "image/png" in o.get("data", {})]
  assert len(images) == 2
  assert (run_dir / "width_sweep_workdir" / "report.md").exists()
