"""The layout the README promises: kernels at the package root never import the orchestration in
`unlearn_jax/pipelines/`, and no module of `unlearn_jax` takes part in an import cycle (imports
inside functions count too)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "unlearn_jax"


def module_name(path: Path) -> str:
  parts = path.relative_to(ROOT).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PKG.rglob("*.py")}


def imports(name: str) -> set[str]:
  """The unlearn_jax modules `name` imports (`from pkg import mod` counts as `pkg.mod`)."""
  path = MODULES[name]
  out = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      out |= {a.name for a in node.names if a.name in MODULES}
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in MODULES:
      subs = {f"{node.module}.{a.name}" for a in node.names} & set(MODULES)
      out |= subs or {node.module}
      if len(subs) < len(node.names):  # also names defined in the package itself
        out.add(node.module)
  out.discard(name)
  return out


GRAPH = {name: imports(name) for name in MODULES}


def test_graph_is_not_empty():
  assert "unlearn_jax.pipelines.experiment" in GRAPH and len(GRAPH) > 40
  assert "unlearn_jax.pipelines.validate" in GRAPH["unlearn_jax.pipelines.experiment"]


def test_kernels_do_not_import_pipelines():
  offenders = {n: sorted(d for d in deps if d.startswith("unlearn_jax.pipelines"))
               for n, deps in GRAPH.items() if not n.startswith("unlearn_jax.pipelines")}
  assert not {n: d for n, d in offenders.items() if d}


def test_no_import_cycle():
  state: dict[str, int] = {}  # 1 = on the stack, 2 = done
  stack: list[str] = []

  def visit(n):
    state[n] = 1
    stack.append(n)
    for d in sorted(GRAPH[n]):
      if state.get(d) == 1:
        raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(d):] + [d]))
      if d not in state:
        visit(d)
    stack.pop()
    state[n] = 2

  for n in sorted(GRAPH):
    if n not in state:
      visit(n)


def test_cycle_detection_works_on_a_cycle(monkeypatch):
  monkeypatch.setitem(GRAPH, "unlearn_jax.io", GRAPH["unlearn_jax.io"] | {"unlearn_jax.train"})
  monkeypatch.setitem(GRAPH, "unlearn_jax.train", GRAPH["unlearn_jax.train"] | {"unlearn_jax.io"})
  try:
    test_no_import_cycle()
  except AssertionError as e:
    assert "import cycle" in str(e)
  else:
    raise AssertionError("the cycle was not found")
