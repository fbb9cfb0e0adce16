"""PyTorch is a benchmark-only extra (`.[bench]`): the library, the experiments and the tests
never import it (only benchmarks/ may, lazily)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def torch_imports(path: Path) -> list[int]:
  """Line numbers of `import torch...` / `from torch... import` in `path`."""
  lines = []
  for node in ast.walk(ast.parse(path.read_text())):
    names = ([a.name for a in node.names] if isinstance(node, ast.Import)
             else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0
             else [])
    if any(n == "torch" or n.startswith("torch.") for n in names):
      lines.append(node.lineno)
  return lines


def test_library_experiments_and_tests_never_import_torch():
  files = [p for d in ("unlearn_jax", "experiments", "tests") for p in (ROOT / d).rglob("*.py")]
  assert len(files) > 50
  offenders = {str(p.relative_to(ROOT)): n for p in files if (n := torch_imports(p))}
  assert not offenders


def test_the_benchmark_twins_do_import_torch():  # the scan above would see a real import
  assert torch_imports(ROOT / "benchmarks" / "torch_nets.py")
