"""What every launcher shares: the --config/--workdir flags, the process setup
(`unlearn_jax.runtime`: deterministic GPU ops, float32 matmuls, compilation cache), the one-line
errors and printing the run's one-line result.

A user error (a bad flag or config value, data not prepared, a workdir that does not fit: any
`unlearn_jax.errors.UserError`, or a permission denied by the file system) prints one line,
`error: <what is wrong>; <how to fix it>`, to stderr and exits with status 2; the launchers check
the whole config before they write anything, so the workdir is left as it was. Set
`UNLEARN_JAX_TRACEBACK=1` to see the traceback too. Any other exception is a bug: its traceback
is printed and the exit status is 1.
"""

from __future__ import annotations

import ast
import importlib
import os
import re
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from absl import flags, logging
from ml_collections import config_flags

from unlearn_jax.errors import UserError

TRACEBACK_ENV = "UNLEARN_JAX_TRACEBACK"
_HELP = ("--help", "-h", "--helpshort", "--helpfull", "-?")


def one_line(message: str) -> str:
  """A message folded onto one line."""
  return " ".join(str(message).split())


def _flag_error(e: Exception) -> str:
  """The useful part of an absl/ml_collections flag error, on one line."""
  text = one_line(e)
  # ml_collections wraps the config module's own exception (a ValueError, KeyError, TypeError
  # or a subclass such as MethodConfigError) in its traceback: keep that exception's message
  found = list(re.finditer(r"\b[\w.]*(?:Error|Exception): ", text))
  return text[found[-1].end():] if found else text


def _unknown_field(e: Exception, argv: Sequence[str]) -> str:
  """'config.train.epoch is not a field of the config (did you mean epochs?)', from the
  KeyError ml_collections raises for a field it does not have."""
  text = str(e)
  found = re.search(r"'([^'\\]+)", text)
  name = found.group(1) if found else text
  flag = f"config...{name}"
  for arg in argv:
    path = arg.split("=", 1)[0]
    if path.startswith("--config.") and re.search(r"\b" + re.escape(name) + r"\b", path):
      flag = path[2:]
  hint = re.search(r'Did you mean "([^"]+)"', text)
  return f"{flag} is not a field of the config" + (f" (did you mean {hint.group(1)}?)"
                                                   if hint else "")


def _config_arg(argv: Sequence[str]) -> Optional[str]:
  """The file part of the last `--config=FILE[:ARG]` (or `--config FILE[:ARG]`) in argv."""
  value = None
  for i, a in enumerate(argv):
    if a.startswith("--config="):
      value = a.split("=", 1)[1]
    elif a == "--config" and i + 1 < len(argv):
      value = argv[i + 1]
  if value is None:
    return None
  path = value
  while ":" in path and not os.path.isfile(path):
    path = path.rsplit(":", 1)[0]  # FILE:ARG (ARG may contain colons, a path rarely does)
  return path


def _config_file_problem(argv: Sequence[str], default_config: str) -> Optional[str]:
  """A missing config file, one with a syntax error, or one without `get_config`."""
  path = _config_arg(argv)
  if path is None:
    return None
  hint = f"pass --config={default_config} (or a copy of it), optionally with :ARG"
  if not os.path.isfile(path):
    return f"config file {path} does not exist; {hint}"
  try:
    with open(path, encoding="utf-8") as f:
      tree = ast.parse(f.read(), filename=path)
  except SyntaxError as e:
    return f"config file {path} has a syntax error at line {e.lineno}: {e.msg}; fix it or {hint}"
  except (OSError, UnicodeDecodeError) as e:
    return f"config file {path} cannot be read ({type(e).__name__}); {hint}"
  if not any(isinstance(n, ast.FunctionDef) and n.name == "get_config" for n in tree.body):
    return f"config file {path} defines no get_config(); {hint}"
  return None


def _foreign_config(config: Any, argv: Sequence[str], default_config: Optional[str]
                    ) -> Optional[str]:
  """Another launcher's config: top-level fields of this launcher's own config are missing."""
  given = _config_arg(argv)
  if default_config is None or not hasattr(config, "keys") or (
      given and os.path.isfile(given) and os.path.isfile(default_config)
      and os.path.samefile(given, default_config)):
    return None  # the launcher's own config file: nothing to compare
  path = Path(default_config)
  module = (f"experiments.configs.{path.stem}" if path.suffix == ".py" and
            path.parent.name == "configs" and path.parent.parent.name == "experiments" else None)
  try:
    own = importlib.import_module(module).get_config() if module else None
  except Exception:  # noqa: BLE001 - the check is a courtesy; the launcher still validates
    return None
  if own is None:
    return None
  missing = sorted(set(own.keys()) - set(config.keys()))
  if not missing:
    return None
  return (f"--config {given} is not a config of this launcher (it has no "
          f"{', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''}); pass "
          f"--config={default_config}, optionally with :ARG")


def fail(message: str) -> int:
  print(f"error: {one_line(message)}", file=sys.stderr)
  return 2


def main(argv: Sequence[str], job: Callable[[Any, str], str], *,
         default_config: Optional[str], config_help: str = "", workdir_help: str = "") -> int:
  """Parse `argv`, run `job(config, workdir)` and print what it returns; the exit status.

  `default_config`: the config file of `--config` (None: the launcher has no config flag and
  `job` gets None).
  """
  fv = flags.FlagValues()
  config_flag = (config_flags.DEFINE_config_file("config", default_config, config_help,
                                                 flag_values=fv, sys_argv=list(argv))
                 if default_config is not None else None)
  workdir_flag = flags.DEFINE_string("workdir", None, workdir_help, flag_values=fv)
  if any(a in _HELP for a in argv[1:]):
    print(fv.get_help())
    return 0
  if not flags.FLAGS.is_parsed():  # absl logging warns until the global flags are parsed
    flags.FLAGS.mark_as_parsed()
  logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint step at INFO
  show_traceback = os.environ.get(TRACEBACK_ENV, "") not in ("", "0")
  try:
    if default_config is not None:
      problem = _config_file_problem(argv, default_config)
      if problem:
        return fail(problem)
    try:
      extra = fv(list(argv))[1:]
    except (flags.Error, AttributeError, KeyError, ValueError, TypeError) as e:
      # ml_collections raises AttributeError/KeyError for a field the config does not have,
      # ValueError/TypeError from the config argument's parser or a value of the wrong type
      if show_traceback:
        traceback.print_exc()
      what = (_unknown_field(e, argv) if isinstance(e, (AttributeError, KeyError))
              else _flag_error(e))
      return fail(f"{what}; see --help for the flags and experiments/configs/ for the config "
                  "fields")
    if extra:
      return fail(f"unexpected argument(s) {' '.join(extra)}; flags take the form --name=value")
    if not workdir_flag.value:
      return fail("--workdir is required; pass --workdir=DIR (a folder, created if absent)")
    config = config_flag.value if config_flag is not None else None
    writer = True
    if config is not None:
      foreign = _foreign_config(config, argv, default_config)
      if foreign:
        return fail(foreign)
      from unlearn_jax.pipelines import validate
      from unlearn_jax.runtime import configure_from_config
      validate.check_process_options(config)
      configure_from_config(config)
      if config.get("distributed"):
        import jax  # noqa: PLC0415
        writer = jax.process_index() == 0  # the process that writes the workdir
    from unlearn_jax.pipelines.lock import workdir_lock  # noqa: PLC0415
    with workdir_lock(workdir_flag.value, enabled=writer):  # one launcher per workdir
      print(job(config, workdir_flag.value))
    return 0
  except (UserError, PermissionError) as e:
    if show_traceback:
      traceback.print_exc()
    if isinstance(e, PermissionError):
      return fail(f"{e}; make the folder writable or choose another --workdir")
    return fail(str(e))


def run_launcher(default_config: Optional[str], config_help: str, workdir_help: str,
                 job: Callable[[Any, str], str]) -> None:
  """The entry point of a `python -m experiments.<name>` launcher."""
  sys.exit(main(sys.argv, job, default_config=default_config, config_help=config_help,
                workdir_help=workdir_help))
