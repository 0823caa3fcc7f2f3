"""Reference parameter counts of the YOLO-family backbones, counted by formula from the reference definitions.

Independent of yoloswap's modules on purpose: it imports nothing from yoloswap and builds nothing; it adds up
conv weights (k*k*c_in*c_out/groups), BN affine pairs (2*c) and conv biases layer by layer, following
MMYOLO v0.6 (YOLOv6EfficientRep, YOLOv6CSPBep, YOLOv8CSPDarknet: mmyolo/models/backbones, layers/yolo_bricks.py) and
MMDetection v3 (CSPNeXt, CSPLayer, CSPNeXtBlock, ChannelAttention) as read. docs/yolo-backbones.md quotes its
output and tests/test_yolo_backbones.py checks every preset against those numbers.

    python bench/yolo_backbone_params.py
"""

import math


def conv_bn(c_in, c_out, k, groups=1):
    return k * k * c_in * c_out // groups + 2 * c_out


def sppf(c_in, c_out):
    mid = c_in // 2
    return conv_bn(c_in, mid, 1) + conv_bn(4 * mid, c_out, 1)


def rnd(n, d):
    return max(round(n * d), 1)


def div8(c, w):
    return math.ceil(c * w / 8) * 8


def repvgg(c_in, c_out, stride):
    identity = 2 * c_in if (c_in == c_out and stride == 1) else 0
    return conv_bn(c_in, c_out, 3) + conv_bn(c_in, c_out, 1) + identity


def efficientrep(d, w):
    plan = [(64, 128, 6), (128, 256, 12), (256, 512, 18), (512, 1024, 6)]
    total = repvgg(3, int(64 * w), 2)
    for i, (ci, co, n) in enumerate(plan):
        ci, co, n = int(ci * w), int(co * w), rnd(n, d)
        total += repvgg(ci, co, 2) + repvgg(co, co, 1) * n  # downsample + RepStageBlock(co, co, n)
        if i == 3:
            total += sppf(co, co)
    return total, [int(c * w) for c in (256, 512, 1024)]


def cspbep(d, w, hidden_ratio, conv_blocks):
    """YOLOv6CSPBep: blocks are RepVGG (m) or MMYOLO's ConvWrapper, a 3x3 conv *with bias* + BN (l)."""
    block = (lambda ci, co, s: conv_bn(ci, co, 3) + co) if conv_blocks else repvgg
    plan = [(64, 128, 6), (128, 256, 12), (256, 512, 18), (512, 1024, 6)]
    total = block(3, int(64 * w), 2)
    for i, (ci, co, n) in enumerate(plan):
        ci, co, n = int(ci * w), int(co * w), rnd(n, d)
        h = int(co * hidden_ratio)
        bottle_reps = max(n // 2, 1)  # RepStageBlock(bottle_block=BottleRep): conv1 + (n // 2 - 1) more
        bepc3 = 2 * conv_bn(co, h, 1) + conv_bn(2 * h, co, 1) + bottle_reps * (2 * block(h, h, 1) + 1)  # +1: alpha
        total += block(ci, co, 2) + bepc3 + (sppf(co, co) if i == 3 else 0)
    return total, [int(c * w) for c in (256, 512, 1024)]


def c2f_darknet(d, w, last):
    plan = [(64, 128, 3), (128, 256, 6), (256, 512, 6), (512, last, 3)]
    total = conv_bn(3, div8(64, w), 3)
    for i, (ci, co, n) in enumerate(plan):
        ci, co, n = div8(ci, w), div8(co, w), rnd(n, d)
        mid = int(co * 0.5)
        c2f = conv_bn(co, 2 * mid, 1) + conv_bn((2 + n) * mid, co, 1) + n * 2 * conv_bn(mid, mid, 3)
        total += conv_bn(ci, co, 3) + c2f + (sppf(co, co) if i == 3 else 0)
    return total, [div8(c, w) for c in (256, 512, last)]


def cspnext(d, w):
    plan = [(64, 128, 3), (128, 256, 6), (256, 512, 6), (512, 1024, 3)]
    half, stem = int(64 * w // 2), int(64 * w)
    total = conv_bn(3, half, 3) + conv_bn(half, half, 3) + conv_bn(half, stem, 3)
    for i, (ci, co, n) in enumerate(plan):
        ci, co, n = int(ci * w), int(co * w), rnd(n, d)
        mid = int(co * 0.5)
        block = conv_bn(mid, mid, 3) + conv_bn(mid, mid, 5, groups=mid) + conv_bn(mid, mid, 1)
        attention = (2 * mid) * (2 * mid) + 2 * mid  # 1x1 conv with bias
        csp = 2 * conv_bn(co, mid, 1) + conv_bn(2 * mid, co, 1) + n * block + attention
        total += conv_bn(ci, co, 3) + csp + (sppf(co, co) if i == 3 else 0)
    return total, [int(c * w) for c in (256, 512, 1024)]


REFERENCE = {
    "yolov6n": lambda: efficientrep(0.33, 0.25),
    "yolov6t": lambda: efficientrep(0.33, 0.375),
    "yolov6s": lambda: efficientrep(0.33, 0.5),
    "yolov6m": lambda: cspbep(0.6, 0.75, 2 / 3, conv_blocks=False),
    "yolov6l": lambda: cspbep(1.0, 1.0, 1 / 2, conv_blocks=True),
    "yolov8n": lambda: c2f_darknet(0.33, 0.25, 1024),
    "yolov8s": lambda: c2f_darknet(0.33, 0.5, 1024),
    "yolov8m": lambda: c2f_darknet(0.67, 0.75, 768),
    "yolov8l": lambda: c2f_darknet(1.0, 1.0, 512),
    "cspnext-t": lambda: cspnext(0.167, 0.375),
    "cspnext-s": lambda: cspnext(0.33, 0.5),
    "cspnext-m": lambda: cspnext(0.67, 0.75),
    "cspnext-l": lambda: cspnext(1.0, 1.0),
}

if __name__ == "__main__":
    print("| preset | parameters | channels (P3/P4/P5) |")
    print("|---|---:|---|")
    for name, count in REFERENCE.items():
        params, channels = count()
        print(f"| `{name}` | {params:,} | {'/'.join(map(str, channels))} |")
