"""yoloswap: put any image backbone under a YOLOv5 detector and train it.

The public Python API (``yoloswap.train``, ``yoloswap.load``, ...) lives in :mod:`yoloswap.api` and is loaded on
first use, so ``import yoloswap`` and ``yoloswap --help`` stay instant (no torch until it is needed).
"""

__version__ = "0.1.0"

__all__ = ["list_backbones", "probe", "build", "train", "load", "val", "export", "Run", "Detector", "Result",
           "Validation", "__version__"]


def __getattr__(name: str):
    """``yoloswap.train`` and the other public names, imported from :mod:`yoloswap.api` on first access."""
    if name in __all__:
        from yoloswap import api

        return getattr(api, name)
    raise AttributeError(f"module 'yoloswap' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
