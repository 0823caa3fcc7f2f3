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


def remembered_path(folder: str, key: dict) -> Path:
    """Where a measurement keyed on ``key`` (plain data) is remembered: ``<home>/<folder>/<hash>.json``."""
    import hashlib
    import json

    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:24]
    return yoloswap_home() / folder / f"{digest}.json"


def read_remembered(path: Path) -> dict | None:
    """The remembered measurement, or ``None`` when there is none (or a damaged one): measure again."""
    import json

    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def remember(path: Path, data: dict) -> None:
    """Write ``data`` whole or not at all (temp file, then rename); a read-only home only costs speed later."""
    import json

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, default=str))
        tmp.replace(path)
    except OSError:
        pass
