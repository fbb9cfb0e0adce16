"""Execute a notebook top to bottom as CI does (shared by the notebook tests; not a test file).

The kernel must be this interpreter (the one with unlearn_jax installed), whatever kernels the
machine has registered: `run_notebook` writes a throwaway kernelspec whose argv is
`sys.executable` into a temporary JUPYTER_PATH and runs the notebook with it, in a temporary
folder, with the project on PYTHONPATH (so it works from a checkout that is not installed).
"""

import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_notebook(notebook: Path, tmp_path: Path, monkeypatch, kernel: str):
  """Run `notebook` in `tmp_path/run`; returns (the executed notebook, its stream output, run dir)."""
  nbformat = pytest.importorskip("nbformat")
  nbclient = pytest.importorskip("nbclient")
  pytest.importorskip("ipykernel")
  spec = tmp_path / "jupyter" / "kernels" / kernel
  spec.mkdir(parents=True)
  (spec / "kernel.json").write_text(json.dumps({
      "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
      "display_name": "unlearn-jax (test)", "language": "python"}))
  monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
  monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
      [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
  run_dir = tmp_path / "run"
  run_dir.mkdir()
  nb = nbformat.read(notebook, as_version=4)
  client = nbclient.NotebookClient(nb, timeout=900, kernel_name=kernel,
                                   resources={"metadata": {"path": str(run_dir)}})
  client.execute()
  outputs = "\n".join(o.get("text", "") for cell in nb.cells if cell.cell_type == "code"
                      for o in cell.get("outputs", []) if o.get("output_type") == "stream")
  return nb, outputs, run_dir


def images(nb) -> list:
  """The PNG outputs of the executed notebook."""
  return [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
          if "image/png" in o.get("data", {})]
