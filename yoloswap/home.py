"""Where yoloswap keeps what it can rebuild: the one home for the cache folder."""

from __future__ import annotations

import os
from pathlib import Path


def yoloswap_home() -> Path:
    """``$YOLOSWAP_HOME``, else ``$XDG_CACHE_HOME/yoloswap``, else ``~/.cache/yoloswap``.

    Probe measurements and the built-in data set live here; deleting it only costs time.
    """
    if os.environ.get("YOLOSWAP_HOME"):
        return Path(os.environ["YOLOSWAP_HOME"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "yoloswap"
