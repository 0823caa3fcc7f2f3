"""Where output goes: data (tables, JSON) to stdout, logs and progress to stderr."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

# Piped output gets a wide fixed width instead of rich's 80 columns, so tables stay whole in logs.
out = Console(width=None if sys.stdout.isatty() else 160)  # stdout: what a script or a person came for
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)  # stderr: logs, progress, warnings


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")
    sys.stdout.flush()
