"""The error a user can fix: bad config or flag, data not prepared, a workdir that does not fit.

Every launcher prints a `UserError` as one line, `error: <what is wrong>; <how to fix it>`, and
exits with status 2 (`experiments/launch.py`); any other exception is a bug and keeps its
traceback. Kernels raise subclasses of it (`DatasetNotPreparedError`, `MethodConfigError`, ...)
so that the launcher can tell the two apart. It is a `ValueError`, so code that catches
`ValueError` keeps working.
"""

from __future__ import annotations


class UserError(ValueError):
  """An error in the user's input; its message names the problem and the fix, on one line."""


class ConfigError(UserError):
  """A config field is missing, of the wrong type or out of range (the message names it)."""


class WorkdirError(UserError):
  """The workdir cannot be used as it is (a file, read-only, made with another config, holds a
  corrupted or half-written file)."""


class TrainingDivergedError(UserError):
  """A reference group's loss became NaN/inf; the message names the group, seeds and knob."""
