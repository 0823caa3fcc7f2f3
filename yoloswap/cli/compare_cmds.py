"""yoloswap compare (placeholder during development)."""

def compare() -> None:
    """Compare backbones."""
