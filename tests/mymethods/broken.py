"""A module that is not a method: it has DEFAULTS and check_config but no `unlearn`."""

DEFAULTS = dict(epochs=1)


def check_config(cfg, data=None):
  del cfg, data
