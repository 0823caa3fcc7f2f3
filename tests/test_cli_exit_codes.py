"""One exit-code convention for every command: 2 when the command line is wrong, 1 when what it read or did
failed, 0 when done (yoloswap/errors.py; README "Exit codes")."""

from __future__ import annotations

import pytest

from yoloswap import __version__


def test_version(cli):
    code, out, err = cli("--version")
    assert (code, out.strip(), err) == (0, f"yoloswap {__version__}", "")


@pytest.mark.parametrize(
    "args,message",
    [
        (["train", "--epochz", "3"], "No such option"),
        (["probe-channels", "--backbone", "convnxt-tiny"], "did you mean 'convnext-tiny'"),
        (["probe-channels", "--backbone", "yolov5n", "--device", "tpu"], "unknown device 'tpu'"),
        (["info", "--backbone", "yolov5n", "--num-classes", "0"], "at least 1"),
        (["train", "--backbone", "yolov5n", "--epochs", "0"], "--epochs: must be at least 1"),
        (["train", "--backbone", "yolov5n", "--device", "meta"], "cannot train"),
        (["val", "--data", "x.yaml"], "Missing option '--weights'"),
    ],
)
def test_a_wrong_command_line_exits_2(cli, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(*args)
    assert code == 2, err
    assert message in err and out == "" and "Traceback" not in err


@pytest.mark.parametrize(
    "args,message",
    [
        (["train", "--backbone", "yolov5n", "--data", "no/such/data.yaml"], "data YAML not found"),
        (["val", "--weights", "no/such/best.pt"], "no/such/best.pt"),
        (["predict", "--weights", "no/such/best.pt", "--source", "."], "no/such/best.pt"),
        (["probe-channels", "--backbone", "broken.yaml", "--device", "meta"], "broken.yaml"),
    ],
)
def test_bad_data_or_files_exit_1(cli, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken.yaml").write_text("family: x\ndescription: y\nmodel: {source: timm, name: resnet18}\nx: 1\n")
    code, out, err = cli(*args)
    assert code == 1, err
    assert err.startswith("Error: ") and message in err and len(err.strip().splitlines()) == 1


def test_the_convention_lives_in_the_error_classes():
    from yoloswap import errors

    assert errors.UsageError("x").exit_code == errors.EXIT_USAGE == 2
    for cls in (errors.ConfigError, errors.DataError, errors.CheckpointError, errors.WeightsError,
                errors.TrainingError):
        assert cls("x").exit_code == errors.EXIT_FAILURE == 1


@pytest.mark.parametrize("args", [
    ("-b", "timm:vit_small_patch16_224"),  # one stride only
    ("-b", "timm:inception_v3"),  # strides that are not exact fractions of the input
    ("-b", "torchvision:maxvit_t", "--img-size", "320"),  # a size its windows do not divide
], ids=["plain-vit", "inexact-strides", "fixed-size"])
def test_every_refusal_of_a_backbone_is_one_usage_line_without_library_internals(cli, args):
    code, _, err = cli("probe-channels", *args)
    assert code == 2, err
    line = err.strip()
    assert line.startswith("Error: ") and "\n" not in line
    assert "RuntimeError" not in line and "shape '[" not in line
