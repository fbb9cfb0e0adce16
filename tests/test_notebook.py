"""Execute colabs/quickstart.ipynb top to bottom, as CI does.

The kernel must be this interpreter (the one with unlearn_jax installed), whatever kernels the
machine has registered: the test writes a throwaway kernelspec whose argv is `sys.executable`
into a temporary JUPYTER_PATH and runs the notebook with it, in a temporary folder.
"""

import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "colabs" / "quickstart.ipynb"
KERNEL = "unlearn-jax-test"


@pytest.mark.slow
def test_quickstart_notebook_runs(tmp_path, monkeypatch):
  nbformat = pytest.importorskip("nbformat")
  nbclient = pytest.importorskip("nbclient")
  pytest.importorskip("ipykernel")
  spec = tmp_path / "jupyter" / "kernels" / KERNEL
  spec.mkdir(parents=True)
  (spec / "kernel.json").write_text(json.dumps({
      "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
      "display_name": "unlearn-jax (test)", "language": "python"}))
  monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
  # The kernel imports the project from this checkout even if it is not installed.
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
  assert "2/2 methods ok" in outputs, outputs[-3000:]
  assert "oracle" in outputs and "neggrad_plus" in outputs
  images = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
            if "image/png" in o.get("data", {})]
  assert len(images) >= 2  # the saved plot and the inline histogram
  workdir = run_dir / "quickstart_workdir"
  assert (workdir / "report.md").exists() and (workdir / "plots" / "forget_vs_test.png").exists()
