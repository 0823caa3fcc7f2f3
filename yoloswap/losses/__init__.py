"""One loss module per head: ``yolov5`` (anchor-ratio matching, objectness) and ``yolov8`` (task-aligned
assignment, DFL). A head's ``make_loss`` picks its own; nothing else imports a loss by name."""

from yoloswap.losses.yolov5 import LevelTargets, YOLOv5Loss, build_targets
from yoloswap.losses.yolov8 import YOLOv8Loss, dfl_loss

__all__ = ["LevelTargets", "YOLOv5Loss", "YOLOv8Loss", "build_targets", "dfl_loss"]
