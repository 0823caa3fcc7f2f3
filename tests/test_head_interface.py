"""The head interface: trainer, validation, predict and checkpoints know a head only through it.

A tiny head that implements nothing but the interface trains end to end; the yolov8 head trains, resumes from its
checkpoint, validates and predicts through the CLI; both shipped heads decode to the same detection rows.
"""

from __future__ import annotations

import csv
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.make_data import ultralytics_set
from yoloswap import ops
from yoloswap.checkpoint import load_checkpoint
from yoloswap import assembly
from yoloswap.models.cspdarknet import CSPDarknet
from yoloswap.models.detector import Detector
from yoloswap.models.head import YOLOv5Head
from yoloswap.models.neck import YOLOv5PAFPN
from yoloswap.models.yolov8_head import YOLOv8Head

TINY = ["--backbone", "yolov5n", "--img-size", "64", "--batch-size", "4", "--workers", "0", "--device", "cpu"]


class CentreLoss:
    """An L1 loss on the box of the cell under each target's centre plus BCE on classes everywhere."""

    names = ("l1", "bce")

    def __init__(self, stride: int, num_classes: int) -> None:
        self.stride, self.num_classes = stride, num_classes

    def __call__(self, outputs, targets):
        (raw,) = outputs  # (N, 4 + nc, H, W)
        cls_target = torch.zeros_like(raw[:, 4:])
        l1 = raw.sum() * 0
        if len(targets):
            n, c = targets[:, 0].long(), targets[:, 1].long()
            gx = (targets[:, 2] / self.stride).long().clamp(0, raw.shape[3] - 1)
            gy = (targets[:, 3] / self.stride).long().clamp(0, raw.shape[2] - 1)
            l1 = F.l1_loss(raw[n, :4, gy, gx], targets[:, 2:6] / 64)
            cls_target[n, c, gy, gx] = 1.0
        bce = F.binary_cross_entropy_with_logits(raw[:, 4:], cls_target)
        items = torch.stack((l1, bce))
        return items.sum() * raw.shape[0], items.detach()


class CentreHead(nn.Module):
    """One 1x1 conv on the stride-32 map: per cell a box (cx, cy, w, h / 64) and class logits."""

    name = "centre"

    def __init__(self, in_channels, num_classes, strides) -> None:
        super().__init__()
        self.num_classes, self.stride_values = num_classes, tuple(strides)
        self.conv = nn.Conv2d(in_channels[-1], 4 + num_classes, 1)

    def forward(self, features):
        return [self.conv(features[-1])]

    def decode(self, outputs):
        (raw,) = outputs
        n = raw.shape[0]
        rows = raw.float().flatten(2).transpose(1, 2)  # (N, H*W, 4+nc)
        boxes = ops.xywh2xyxy(rows[..., :4] * 64)  # (N, H*W, 4) pixels
        return torch.cat((boxes, rows[..., 4:].sigmoid()), dim=-1).view(n, -1, 4 + self.num_classes)

    def make_loss(self, img_size):
        return CentreLoss(self.stride_values[-1], self.num_classes)


def test_a_head_that_implements_only_the_interface_trains_end_to_end(cli, tmp_path, monkeypatch):
    monkeypatch.setitem(assembly.HEADS, "centre", lambda ch, plan: CentreHead(ch, plan.num_classes, plan.strides))
    data = ultralytics_set(tmp_path / "data", names_as_dict=False)
    run = tmp_path / "run"
    code, _, err = cli("train", *TINY, "--epochs", "1", "--head", "centre", "--data", str(data), "--out", str(run))
    assert code == 0, err
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert list(rows[0])[:5] == ["epoch", "train/l1_loss", "train/bce_loss", "val/l1_loss", "val/bce_loss"]
    assert float(rows[0]["train/l1_loss"]) > 0 and rows[0]["val/bce_loss"] != "" and rows[0]["metrics/mAP50"] != ""
    ckpt = load_checkpoint(run / "weights" / "last.pt")
    assert ckpt["plan"]["head"] == "centre" and "head.conv.weight" in ckpt["model"]
    assert ckpt["optimizer"]["state"]  # an optimizer step was taken
    assert "autoanchor" not in err  # a head without anchors is not checked
    code, out, err = cli("val", "--weights", str(run / "weights" / "last.pt"), "--data", str(data), "--json",
                         "--workers", "0")
    assert code == 0, err
    assert 0.0 <= json.loads(out)["map"] <= 1.0


def test_yolov8_head_trains_resumes_validates_and_predicts(cli, tmp_path, monkeypatch):
    import yoloswap.training.loop as trainer

    data = ultralytics_set(tmp_path / "data", names_as_dict=False)
    run = tmp_path / "run"
    real_epoch = trainer.train_one_epoch

    def dies_in_second_epoch(run_state, loader, loss_fn, epoch, console):
        if epoch == 1:
            raise KeyboardInterrupt
        return real_epoch(run_state, loader, loss_fn, epoch, console)

    monkeypatch.setattr(trainer, "train_one_epoch", dies_in_second_epoch)
    code, _, err = cli("train", *TINY, "--epochs", "2", "--head", "yolov8", "--data", str(data), "--out", str(run))
    assert code == 130, err
    monkeypatch.setattr(trainer, "train_one_epoch", real_epoch)
    code, _, err = cli("train", "--resume", str(run), "--workers", "0", "--device", "cpu")
    assert code == 0, err  # the head type comes back from the checkpoint's plan
    ckpt = load_checkpoint(run / "weights" / "last.pt")
    assert ckpt["epoch"] == 1 and ckpt["plan"]["head"] == "yolov8" and ckpt["config"]["options"]["head"] == "yolov8"
    assert "head.box_branches.0.0.conv.weight" in ckpt["model"]
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"] and "train/dfl_loss" in rows[0] and "train/obj_loss" not in rows[0]

    code, out, err = cli("val", "--weights", str(run / "weights" / "last.pt"), "--data", str(data), "--json",
                         "--workers", "0")
    assert code == 0, err
    assert 0.0 <= json.loads(out)["map"] <= 1.0
    code, _, err = cli("predict", "--weights", str(run / "weights" / "last.pt"), "--source",
                       str(data.parent / "images" / "val"), "--out", str(tmp_path / "pred"), "--conf", "0.001")
    assert code == 0, err
    assert len(json.loads((tmp_path / "pred" / "predictions.json").read_text())) == 3


def test_an_unknown_head_is_one_line_naming_the_option(cli, tmp_path):
    code, _, err = cli("train", *TINY, "--head", "yolo8", "--out", str(tmp_path / "run"))
    assert code != 0 and "--head: 'yolo8' is not one of yolov5, yolov8; did you mean 'yolov8'?" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("head_cls", [YOLOv5Head, YOLOv8Head])
def test_infer_and_predict_go_through_the_heads_decode(head_cls):
    torch.manual_seed(0)
    neck = YOLOv5PAFPN((16, 32, 64), (16, 32, 64), depth=1)
    model = Detector(CSPDarknet(0.33, 0.0625), neck, head_cls(neck.out_channels, 3, (8, 16, 32)),
                     (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)).eval()
    images = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        rows = model.infer(images)
        assert torch.equal(rows, model.head.decode(model(images)))
        dets = model.predict(images, conf=0.0, iou=0.5)
    points = 3 * (8 * 12 + 4 * 6 + 2 * 3) if head_cls is YOLOv5Head else 8 * 12 + 4 * 6 + 2 * 3
    assert rows.shape == (2, points, 4 + 3)
    assert (rows[..., 4:] >= 0).all() and (rows[..., 4:] <= 1).all()
    assert (rows[..., 2:4] >= rows[..., :2]).all()  # x2 >= x1, y2 >= y1
    assert len(dets) == 2 and dets[0].shape[1] == 6


def test_yolov8_head_under_torchrun_with_an_image_without_boxes(tmp_path):
    """DDP (gloo on CPU), two ranks: a rank whose batch has no boxes still gives every parameter a gradient."""
    import os
    import subprocess
    import sys

    data = ultralytics_set(tmp_path / "data", names_as_dict=False, n_train=8)
    for i in range(7):  # one image with boxes: in two steps of 2 images per rank, a rank sees none (no mosaic)
        (tmp_path / "data" / "labels" / "train" / f"{i}.txt").write_text("")
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29541",
           "-m", "yoloswap", "train", *TINY, "--epochs", "1", "--head", "yolov8", "--mosaic", "0",
           "--data", str(data), "--out", str(run)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert load_checkpoint(run / "weights" / "last.pt")["plan"]["head"] == "yolov8"
