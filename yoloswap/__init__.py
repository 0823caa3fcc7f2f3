"""yoloswap: put any image backbone under a YOLOv5 detector and train it."""

__version__ = "0.1.0"
