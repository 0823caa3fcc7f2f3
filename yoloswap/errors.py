"""One error family for everything a user can get wrong.

The CLI catches :class:`YoloswapError`, prints ``Error: <message>`` on one line and exits with
``exit_code``; any other exception is a bug and shows a traceback only with ``YOLOSWAP_DEBUG=1``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class YoloswapError(Exception):
    """A problem with the user's input or environment, explained in one line."""

    exit_code = 1


class UsageError(YoloswapError):
    """The command line names something that does not exist (exit code 2, like a usage error)."""

    exit_code = 2


class ConfigError(YoloswapError):
    """A preset, data YAML or option value is malformed; the message names the file and field."""


class DataError(YoloswapError):
    """A data set is missing, unreadable or has malformed labels."""


class CheckpointError(YoloswapError):
    """A checkpoint is missing, corrupt, unsafe to unpickle, or does not fit the model."""


class WeightsError(YoloswapError):
    """Pretrained weights cannot be fetched or do not match the backbone."""


class TrainingError(YoloswapError):
    """Training cannot go on (non-finite loss, run folder conflicts, ...)."""


def did_you_mean(word: str, choices: Iterable[str], n: int = 1, cutoff: float = 0.6) -> list[str]:
    """The closest valid names to ``word``, best first (empty when nothing is close)."""
    return difflib.get_close_matches(word, list(choices), n=n, cutoff=cutoff)


def suggestion(word: str, choices: Iterable[str], n: int = 1) -> str:
    """``"; did you mean 'x'?"`` (or ``'x' or 'y'``) for appending to an error message, or ``""``."""
    close = did_you_mean(word, choices, n=n)
    if not close:
        return ""
    return "; did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
