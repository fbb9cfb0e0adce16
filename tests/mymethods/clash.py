"""A valid method that claims a built-in method's name."""

from mymethods.shrink_finetune import DEFAULTS, check_config, unlearn  # noqa: F401

NAME = "finetune"
