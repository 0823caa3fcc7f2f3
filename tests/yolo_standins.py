"""Stand-ins for the YOLOv5 and Ultralytics packages, so CI writes the pickles those packages write without them.

The classes carry the real modules' dotted names (``models.yolo.Model``, ``models.common.Conv``,
``ultralytics.nn.tasks.DetectionModel`` ...) and are registered in ``sys.modules`` only while ``torch.save`` runs.
The detector is wired by the YOLOv5 v6.1 yaml (layer list with ``from`` indices, as YOLOv5's ``parse_model`` reads
it), independently of yoloswap's key maps, so an equal output proves the maps right.
"""

from __future__ import annotations

import contextlib
import sys
import types

import torch
from torch import nn

from yoloswap.models.blocks import C3, SPPF, Conv

# yolov5*.yaml (v6.1): (from, repeats, module, args at width/depth 1.0)
V5_YAML = [
    (-1, 1, "Conv", (64, 6, 2, 2)), (-1, 1, "Conv", (128, 3, 2)), (-1, 3, "C3", (128,)),
    (-1, 1, "Conv", (256, 3, 2)), (-1, 6, "C3", (256,)), (-1, 1, "Conv", (512, 3, 2)), (-1, 9, "C3", (512,)),
    (-1, 1, "Conv", (1024, 3, 2)), (-1, 3, "C3", (1024,)), (-1, 1, "SPPF", (1024, 5)),
    (-1, 1, "Conv", (512, 1, 1)), (-1, 1, "Upsample", ()), ((-1, 6), 1, "Concat", ()), (-1, 3, "C3", (512, False)),
    (-1, 1, "Conv", (256, 1, 1)), (-1, 1, "Upsample", ()), ((-1, 4), 1, "Concat", ()), (-1, 3, "C3", (256, False)),
    (-1, 1, "Conv", (256, 3, 2)), ((-1, 14), 1, "Concat", ()), (-1, 3, "C3", (512, False)),
    (-1, 1, "Conv", (512, 3, 2)), ((-1, 10), 1, "Concat", ()), (-1, 3, "C3", (1024, False)),
    ((17, 20, 23), 1, "Detect", ()),
]
# yolov8.yaml (Ultralytics): the C2f backbone, its C2f neck without lateral convs, Detect at 22; widths capped at
# ``max_channels`` before scaling (1024 for n/s)
V8_YAML = [
    (-1, 1, "Conv", (64, 3, 2)), (-1, 1, "Conv", (128, 3, 2)), (-1, 3, "C2f", (128, True)),
    (-1, 1, "Conv", (256, 3, 2)), (-1, 6, "C2f", (256, True)), (-1, 1, "Conv", (512, 3, 2)),
    (-1, 6, "C2f", (512, True)), (-1, 1, "Conv", (1024, 3, 2)), (-1, 3, "C2f", (1024, True)),
    (-1, 1, "SPPF", (1024, 5)),
    (-1, 1, "Upsample", ()), ((-1, 6), 1, "Concat", ()), (-1, 3, "C2f", (512,)),
    (-1, 1, "Upsample", ()), ((-1, 4), 1, "Concat", ()), (-1, 3, "C2f", (256,)),
    (-1, 1, "Conv", (256, 3, 2)), ((-1, 12), 1, "Concat", ()), (-1, 3, "C2f", (512,)),
    (-1, 1, "Conv", (512, 3, 2)), ((-1, 9), 1, "Concat", ()), (-1, 3, "C2f", (1024,)),
    ((15, 18, 21), 1, "Detect", ()),
]
ANCHORS_GRID = torch.tensor([[[10, 13], [16, 30], [33, 23]], [[30, 61], [62, 45], [59, 119]],
                             [[116, 90], [156, 198], [373, 326]]], dtype=torch.float32) / torch.tensor(
    [8.0, 16.0, 32.0]).view(3, 1, 1)


class Concat(nn.Module):
    def forward(self, xs):
        return torch.cat(xs, 1)


class Bottleneck(nn.Module):
    """Ultralytics' Bottleneck as C2f uses it: two 3x3 Convs at the same width, a shortcut when asked."""

    def __init__(self, c, shortcut):
        super().__init__()
        self.cv1, self.cv2, self.add = Conv(c, c, 3), Conv(c, c, 3), shortcut

    def forward(self, x):
        return x + self.cv2(self.cv1(x)) if self.add else self.cv2(self.cv1(x))


class C2f(nn.Module):
    """Ultralytics' C2f: cv1 makes two halves, each bottleneck takes the last piece, cv2 merges every piece."""

    def __init__(self, c1, c2, n=1, shortcut=False):
        super().__init__()
        self.c = int(c2 * 0.5)
        self.cv1, self.cv2 = Conv(c1, 2 * self.c, 1), Conv((2 + n) * self.c, c2, 1)
        self.m = nn.ModuleList(Bottleneck(self.c, shortcut) for _ in range(n))

    def forward(self, x):
        y = list(self.cv1(x).chunk(2, 1))
        y.extend(m(y[-1]) for m in self.m)
        return self.cv2(torch.cat(y, 1))


class DetectV5(nn.Module):
    """YOLOv5 v6.1 Detect: one 1x1 conv per level, anchors a buffer in grid units."""

    def __init__(self, nc, ch):
        super().__init__()
        self.m = nn.ModuleList(nn.Conv2d(c, 3 * (5 + nc), 1) for c in ch)
        self.register_buffer("anchors", ANCHORS_GRID.clone())

    def forward(self, xs):
        return [m(x) for m, x in zip(self.m, xs)]


class DetectV8(nn.Module):
    """Ultralytics Detect: cv2 (box, 4x16 bins) and cv3 (classes) per level, dfl a frozen 1x1 conv."""

    def __init__(self, nc, ch):
        super().__init__()
        c2, c3 = max(16, ch[0] // 4, 64), max(ch[0], min(nc, 100))
        self.cv2 = nn.ModuleList(nn.Sequential(Conv(c, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 64, 1)) for c in ch)
        self.cv3 = nn.ModuleList(nn.Sequential(Conv(c, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, nc, 1)) for c in ch)
        self.dfl = nn.Module()
        self.dfl.conv = nn.Conv2d(16, 1, 1, bias=False).requires_grad_(False)
        self.dfl.conv.weight.data[:] = torch.arange(16, dtype=torch.float32).view(1, 16, 1, 1)

    def forward(self, xs):
        return [torch.cat((a(x), b(x)), 1) for a, b, x in zip(self.cv2, self.cv3, xs)]


class Model(nn.Module):
    """The detector as YOLOv5's ``parse_model`` lays it out: ``self.model`` a Sequential, ``f`` on each layer."""

    def __init__(self, widen=0.25, deepen=0.33, nc=80, head="yolov5", layout=None, max_channels=1024):
        super().__init__()
        import math
        ch, layers = [3], []
        for i, (f, n, name, args) in enumerate(layout or V5_YAML):
            n = max(round(n * deepen), 1) if n > 1 else n
            width = lambda c: int(math.ceil(min(c, max_channels) * widen / 8) * 8)  # noqa: E731
            if name == "Conv":
                c2 = width(args[0]); m = Conv(ch[-1], c2, *args[1:])
            elif name == "C3":
                c2 = width(args[0]); m = C3(ch[-1], c2, n, *args[1:])
            elif name == "C2f":
                c2 = width(args[0]); m = C2f(ch[-1], c2, n, *args[1:])
            elif name == "SPPF":
                c2 = width(args[0]); m = SPPF(ch[-1], c2, args[1])
            elif name == "Upsample":
                c2 = ch[-1]; m = nn.Upsample(None, 2, "nearest")
            elif name == "Concat":
                c2 = sum(ch[x] if x < 0 else ch[x + 1] for x in f); m = Concat()
            else:
                m = (DetectV5 if head == "yolov5" else DetectV8)(nc, [ch[x + 1] for x in f]); c2 = 0
            m.f, m.i = f, i
            layers.append(m)
            ch.append(c2)
        self.model = nn.Sequential(*layers)
        self.names = [f"coco{i}" for i in range(nc)]
        self.yaml = {"nc": nc, "depth_multiple": deepen, "width_multiple": widen}

    def forward(self, x):
        y = []
        for m in self.model:
            if m.f != -1:
                x = y[m.f] if isinstance(m.f, int) else [x if j == -1 else y[j] for j in m.f]
            x = m(x)
            y.append(x)
        return x


REAL_NAMES = {  # class -> (module it lives in, name) in the real packages
    "yolov5": {Model: ("models.yolo", "Model"), DetectV5: ("models.yolo", "Detect"), Conv: ("models.common", "Conv"),
               C3: ("models.common", "C3"), SPPF: ("models.common", "SPPF"), Concat: ("models.common", "Concat")},
    "yolov8": {Model: ("ultralytics.nn.tasks", "DetectionModel"), DetectV8: ("ultralytics.nn.modules.head", "Detect"),
               Conv: ("ultralytics.nn.modules.conv", "Conv"), C3: ("ultralytics.nn.modules.block", "C3"),
               SPPF: ("ultralytics.nn.modules.block", "SPPF"), Concat: ("ultralytics.nn.modules.conv", "Concat"),
               C2f: ("ultralytics.nn.modules.block", "C2f"), Bottleneck: ("ultralytics.nn.modules.block", "Bottleneck")},
}


@contextlib.contextmanager
def real_names(head: str):
    """Give the stand-in classes the real dotted names (and modules in ``sys.modules``) for the duration."""
    saved = {cls: (cls.__module__, cls.__qualname__, cls.__name__) for cls in REAL_NAMES[head]}
    added = []
    try:
        for cls, (module, name) in REAL_NAMES[head].items():
            for part in [".".join(module.split(".")[: i + 1]) for i in range(module.count(".") + 1)]:
                if part not in sys.modules:
                    sys.modules[part] = types.ModuleType(part)
                    added.append(part)
            setattr(sys.modules[module], name, cls)
            cls.__module__, cls.__qualname__, cls.__name__ = module, name, name
        yield
    finally:
        for cls, (module, qual, name) in saved.items():
            cls.__module__, cls.__qualname__, cls.__name__ = module, qual, name
        for part in added:
            del sys.modules[part]


def save_like_release(model: Model, path, head: str, extra: dict | None = None) -> None:
    """``torch.save`` the way a release file is made: the half-precision module object under ``model``."""
    import copy
    with real_names(head):
        torch.save({"epoch": -1, "model": copy.deepcopy(model).half(), "ema": None, "optimizer": None,
                    **(extra or {})}, path)
