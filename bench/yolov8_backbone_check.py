"""Genuine Ultralytics YOLOv8 files → yoloswap's yolov8n/s/m/l backbones: every backbone tensor loads and the
features equal those of the file's own layers 4, 6 and 9 (Ultralytics' modules run them).

    PYTHONPATH=. /work/benchvenv/bin/python bench/yolov8_backbone_check.py [OUT_DIR=/tmp/yolov8-files]

Needs ``ultralytics`` (the bench venv, never the product's dependencies). Ultralytics builds each detector from its
own ``yolov8{n,s,m,l}.yaml`` (random weights and BatchNorm statistics, seeded: this machine cannot download the
COCO releases) and writes it
with ``YOLO.save``, the pickled ``DetectionModel`` a release file holds; yoloswap reads it through its restricted
unpickler as any user's file. Also checks that ``read_detector_file`` refuses it as a detector with the command that
uses it. Prints one line per size.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import torch


def main() -> None:
    import ultralytics
    from ultralytics import YOLO

    from yoloswap.backbones.resolve import resolve_backbone
    from yoloswap.backbones.sources import build_backbone
    from yoloswap.backbones.weights import load_backbone_weights
    from yoloswap.errors import BackboneOnlyFile
    from yoloswap.foreign_detector import read_detector_file

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/yolov8-files")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    for size in "nsml":
        path = out / f"yolov8{size}.pt"
        model = YOLO(f"yolov8{size}.yaml")
        with torch.no_grad():  # BatchNorm statistics away from 0/1, so a wrong BN mapping shows in the features
            for m in model.model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.1, 0.1), m.running_var.uniform_(0.5, 1.5)
                    m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.1, 0.1)
        model.save(path)
        preset = dataclasses.replace(resolve_backbone(f"yolov8{size}"), weights=str(path))
        backbone = build_backbone(preset).eval()
        report = load_backbone_weights(backbone, preset.weights, preset)
        detector = torch.load(path, weights_only=False)["model"].float().eval()  # the bench trusts its own file
        x = torch.rand(1, 3, 128, 128)
        with torch.no_grad():
            want, h = [], x
            for index, layer in enumerate(detector.model[:10]):
                h = layer(h)
                if index in (4, 6, 9):
                    want.append(h)
            got = backbone(x)
        diff = max(((a - b).abs().max() / b.abs().max()).item() for a, b in zip(got, want))
        try:
            read_detector_file(path)
            refusal = "read as a detector (wrong)"
        except BackboneOnlyFile as exc:
            refusal = "refused as a detector: ..." + str(exc).split(";")[-1]
        print(f"ultralytics {ultralytics.__version__} yolov8{size}: {report.loaded}/{report.total} backbone tensors, "
              f"max relative feature difference {diff:.1e}; {refusal}")


if __name__ == "__main__":
    main()
