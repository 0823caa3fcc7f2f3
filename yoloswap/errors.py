"""One error family for everything a user can get wrong, and the exit codes the CLI returns for it.

The CLI catches :class:`YoloswapError`, prints ``Error: <message>`` on one line and exits with
``exit_code``; any other exception is a bug and shows a traceback only with ``YOLOSWAP_DEBUG=1``.

Exit codes, one convention for every command (README, "Exit codes"):

- ``0`` done;
- ``1`` (``EXIT_FAILURE``) what the command read or did failed: a data set, preset or checkpoint file that is
  missing or malformed, weights that cannot be fetched, a run folder that is taken, training that diverged — and
  bugs; an optional package that is missing (:class:`MissingExtraError`: the command line was right);
- ``2`` (``EXIT_USAGE``) the command line itself is wrong: an unknown option or name (backbone, device), a value
  out of range, options that conflict. Scripts can retry 1s after fixing data; 2s need a different command;
- ``130`` (``EXIT_INTERRUPTED``) Ctrl-C, as shells report SIGINT.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class YoloswapError(Exception):
    """A problem with the user's input or environment, explained in one line."""

    exit_code = EXIT_FAILURE


class UsageError(YoloswapError):
    """The command line is wrong: an unknown name, a value out of range, options that conflict (exit code 2)."""

    exit_code = EXIT_USAGE


class BackboneRefused(UsageError):
    """A backbone that cannot serve a YOLOv5 neck as asked: its levels, their strides, or the input size (exit 2,
    like any other choice on the command line). One class for every such refusal, whatever the source, so scripts
    and users see one rule; the message says what the backbone gives and what would work."""


class ConfigError(YoloswapError):
    """A preset, data YAML or option value is malformed; the message names the file and field."""


class DataError(YoloswapError):
    """A data set is missing, unreadable or has malformed labels."""


class CheckpointError(YoloswapError):
    """A checkpoint is missing, corrupt, unsafe to unpickle, or does not fit the model."""


class BackboneOnlyFile(CheckpointError):
    """A detector file of which yoloswap can use the backbone only (its message names the preset that takes it)."""


class WeightsError(YoloswapError):
    """Pretrained weights cannot be fetched or do not match the backbone."""


class TrainingError(YoloswapError):
    """Training cannot go on (non-finite loss, run folder conflicts, ...)."""


class MissingExtraError(YoloswapError):
    """An optional package a command needs is not installed (exit code 1: the command line was right, the
    environment lacks a part). Every "install the extra" message comes through here, so it reads the same."""

    def __init__(self, missing: Iterable[str], extra: str) -> None:
        names = " and ".join(missing)
        super().__init__(f"{names} not installed; install the {extra} extras: {extra_hint(extra)}")


def extra_hint(extra: str) -> str:
    """The pip command that installs the ``extra`` of yoloswap (quoted for shells that glob brackets)."""
    return f'pip install "yoloswap[{extra}]"'


def did_you_mean(word: str, choices: Iterable[str], n: int = 1, cutoff: float = 0.6) -> list[str]:
    """The closest valid names to ``word``, best first (empty when nothing is close)."""
    return difflib.get_close_matches(word, list(choices), n=n, cutoff=cutoff)


def suggestion(word: str, choices: Iterable[str], n: int = 1) -> str:
    """``"; did you mean 'x'?"`` (or ``'x' or 'y'``) for appending to an error message, or ``""``."""
    close = did_you_mean(word, choices, n=n)
    if not close:
        return ""
    return "; did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
