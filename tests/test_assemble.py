"""Changing only the backbone name gives a working detector: neck and head fit whatever the probe measured."""

from __future__ import annotations

import json

import pytest
import torch

from yoloswap.errors import UsageError
from yoloswap.losses import YOLOv5Loss
from yoloswap.assembly import build_detector, neck_channels_for, parse_neck_width
from yoloswap.config.presets import preset_names
from yoloswap.backbones.resolve import resolve_backbone

ALL = preset_names()


@pytest.mark.parametrize("name", ALL + ["timm:resnet18", "torchvision:mobilenet_v3_small"])
@pytest.mark.parametrize("size", [(640, 640), (512, 384)], ids=["640", "512x384"])
def test_every_backbone_gives_yolo_outputs_of_the_right_shape(name, size):
    with torch.device("meta"):
        model, plan = build_detector(resolve_backbone(name), num_classes=7, img_size=size)
        outputs = model(torch.zeros(2, 3, *size))
    h, w = size
    assert [tuple(o.shape) for o in outputs] == [(2, 3, h // s, w // s, 5 + 7) for s in (8, 16, 32)]
    assert model.neck.in_channels == plan.backbone_channels


@pytest.mark.parametrize("name", ALL)
def test_backward_reaches_every_trainable_parameter(name):
    torch.manual_seed(0)
    model, _ = build_detector(resolve_backbone(name), num_classes=3, img_size=(64, 64))
    model.train()
    outputs = model(torch.rand(2, 3, 64, 64))
    head = model.head
    loss_fn = YOLOv5Loss(3, head.anchors, head.stride_values, img_size=64)
    targets = torch.tensor([[0, 1, 20.0, 24.0, 16.0, 20.0], [1, 2, 40.0, 30.0, 30.0, 24.0]])
    loss, _ = loss_fn(outputs, targets)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"no gradient for {missing[:5]}"


def test_images_are_normalised_with_the_backbones_own_statistics():
    convnext, _ = build_detector(resolve_backbone("mobilenetv3-small"), 1, (64, 64))
    yolo, _ = build_detector(resolve_backbone("yolov5n"), 1, (64, 64))
    assert torch.allclose(convnext.mean.flatten(), torch.tensor([0.485, 0.456, 0.406]))
    assert torch.allclose(convnext.std.flatten(), torch.tensor([0.229, 0.224, 0.225]))
    assert torch.allclose(yolo.mean.flatten(), torch.zeros(3)) and torch.allclose(yolo.std.flatten(), torch.ones(3))


def test_neck_width_multiplier_and_explicit_list():
    assert neck_channels_for((512, 1024, 2048), 0.5) == (256, 512, 1024)
    assert neck_channels_for((24, 48, 96), 1.0) == (24, 48, 96)
    assert parse_neck_width("128,256,512") == (128, 256, 512)
    assert parse_neck_width("0.25") == 0.25
    with pytest.raises(UsageError, match="--neck-width"):
        parse_neck_width("wide")
    with torch.device("meta"):
        model, plan = build_detector(resolve_backbone("resnet50"), 80, (640, 640), neck_width=(128, 256, 512))
    assert plan.neck_channels == (128, 256, 512) and model.neck.out_channels == (128, 256, 512)


@pytest.mark.parametrize(
    "name,params,gflops",
    [("yolov5n", 1_872_157, 4.47), ("yolov5s", 7_235_389, 16.43), ("yolov5m", 21_190_557, 48.87)],
)
def test_info_reproduces_the_reference_yolov5_sizes(cli, name, params, gflops):
    code, out, _ = cli("info", "--backbone", name, "--num-classes", "80", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["params"] == params
    assert abs(data["gflops"] - gflops) / gflops < 0.02
    assert data["parts"]["backbone"]["params"] + data["parts"]["neck"]["params"] + data["parts"]["head"]["params"] == params


def test_info_table_for_a_foreign_backbone(cli):
    code, out, _ = cli("info", "-b", "mobilenetv3-small", "--num-classes", "5", "--img-size", "320")
    assert code == 0 and "backbone" in out and "neck" in out and "[24, 48, 96]" in out


def test_info_with_a_bad_neck_width_is_a_usage_error(cli):
    code, _, err = cli("info", "-b", "yolov5n", "--neck-width", "1,2")
    assert code == 2 and "--neck-width" in err


@pytest.mark.parametrize(("name", "width"), [(n, None) for n in ALL + ["timm:resnet18"]]
                         + [("resnet50", 0.5), ("mobilenetv3-small", (48, 96, 200))])
def test_the_yolov8_head_fits_every_backbone_and_neck_width(name, width):
    import dataclasses

    preset = dataclasses.replace(resolve_backbone(name), head="yolov8")
    with torch.device("meta"):
        model, plan = build_detector(preset, num_classes=7, img_size=(256, 320), neck_width=width)
        rows = model.infer(torch.zeros(2, 3, 256, 320))
    assert plan.head == "yolov8" and type(model.head).__name__ == "YOLOv8Head"
    assert tuple(rows.shape) == (2, sum((256 // s) * (320 // s) for s in (8, 16, 32)), 4 + 7)
    assert model.head.box_branches[0][0].conv.in_channels == plan.neck_channels[0]


@pytest.mark.parametrize("name", ["yolov5n", "mobilenetv3-small"])
def test_backward_reaches_every_trainable_parameter_with_the_yolov8_head(name):
    import dataclasses

    torch.manual_seed(0)
    model, _ = build_detector(dataclasses.replace(resolve_backbone(name), head="yolov8"), 3, img_size=(64, 64))
    model.train()
    loss, _ = model.head.make_loss(64)(model(torch.rand(2, 3, 64, 64)), torch.tensor([[0, 1, 20.0, 24.0, 16.0, 20.0]]))
    loss.backward()
    assert [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None] == []


def test_the_plan_records_the_head_and_old_plans_read_as_yolov5(tmp_path):
    import dataclasses

    from yoloswap.errors import ConfigError
    from yoloswap.assembly import DetectorPlan, plan_detector

    preset = resolve_backbone("yolov5n")
    plan = plan_detector((64, 128, 256), dataclasses.replace(preset, head="yolov8"), 3)
    assert DetectorPlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
    old = {k: v for k, v in plan_detector((64, 128, 256), preset, 3).to_dict().items() if k != "head"}
    assert DetectorPlan.from_dict(old).head == "yolov5"
    path = tmp_path / "mine.yaml"
    path.write_text("model: {source: yoloswap, name: cspdarknet}\nfamily: x\ndescription: x\nhead: yolov9\n")
    with pytest.raises(ConfigError, match=r"mine.yaml: field 'head': 'yolov9' is not one of yolov5, yolov8"):
        plan_detector((64, 128, 256), resolve_backbone(str(path)), 3)
