"""The README tells a new user the truth: CI runs exactly its test command."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def code_block_after(heading: str) -> str:
  text = (ROOT / "README.md").read_text()
  section = text.split(f"## {heading}", 1)[1]
  return re.search(r"```bash\n(.*?)\n```", section, re.S).group(1).strip()


def test_ci_runs_the_readme_test_command():
  command = code_block_after("Run the tests")
  assert "pytest" in command
  ci = (ROOT / ".ci" / "run").read_text().splitlines()
  assert command in ci, f"{command!r} not a line of .ci/run"


def test_readme_main_command_uses_existing_launcher_and_config():
  command = code_block_after("Run the main job")
  module = re.search(r"python -m (experiments\.\w+)", command).group(1)
  config = re.search(r"--config=(\S+)", command).group(1)
  assert (ROOT / (module.replace(".", "/") + ".py")).exists()
  assert (ROOT / config).exists()
