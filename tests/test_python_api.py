"""The Python API: what a notebook user does with ``import yoloswap`` alone, and the promises it keeps.

Names and signatures are a contract: each public function's signature is written in CHANGELOG.md, so changing
one without saying so there fails here.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import yoloswap
from tests.make_data import ultralytics_set

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(epochs=1, img_size=64, batch_size=4, workers=0, device="cpu", verbose=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run, trained through the API: (data YAML, Run)."""
    root = tmp_path_factory.mktemp("api")
    data = ultralytics_set(root / "ds", names_as_dict=False)
    return data, yoloswap.train("yolov5n", data=data, out=root / "run", **TINY)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd")) if Path("/proc/self/fd").is_dir() else 0


def test_every_public_name_is_listed_and_its_signature_is_in_the_changelog():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    for name in yoloswap.__all__:
        assert hasattr(yoloswap, name), name
        obj = getattr(yoloswap, name)
        if inspect.isfunction(obj):
            documented = f"yoloswap.{name}{inspect.signature(obj)}".replace("'", "")
            assert documented in changelog, f"{documented} changed: record it in CHANGELOG.md"
            assert obj.__doc__, f"yoloswap.{name} has no docstring"


def test_import_yoloswap_loads_no_torch_until_a_function_is_used():
    code = "import sys, yoloswap; assert callable(getattr(yoloswap, 'train')); print('torch' in sys.modules)"
    lazy = "import sys, yoloswap; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", lazy], capture_output=True, text=True).stdout.strip() == "False"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).returncode == 0


def test_probe_and_build_give_channels_and_a_plain_module():
    import torch

    assert yoloswap.probe("yolov5n", 128, device="meta").channels == (64, 128, 256)
    model = yoloswap.build("yolov5n", num_classes=3, head="yolov8", img_size=64)
    assert isinstance(model, torch.nn.Module)
    assert model.eval().infer(torch.rand(1, 3, 64, 64)).shape[-1] == 4 + 3
    assert {row["name"] for row in yoloswap.list_backbones()} >= {"convnext-tiny", "yolov5n"}


def test_a_misspelt_option_raises_the_error_family_with_a_suggestion_and_never_exits():
    from yoloswap.errors import UsageError

    with pytest.raises(UsageError, match="did you mean 'epochs'"):
        yoloswap.train("yolov5n", epoch=3)
    with pytest.raises(UsageError, match="unknown backbone"):
        yoloswap.build("convnext-tinyy")


def test_train_returns_the_run_and_its_metrics(trained):
    data, run = trained
    assert run.best.is_file() and run.last.is_file()
    assert {"map", "map50"} <= set(run.metrics)
    assert (run.folder / "config.yaml").is_file()


@pytest.mark.slow
def test_training_twice_in_one_interpreter_gives_two_runs_and_leaks_nothing(trained, tmp_path, monkeypatch, capfd):
    data, _ = trained
    monkeypatch.chdir(tmp_path)
    yoloswap.train("yolov5n", data=data, **TINY)  # warm: imports and caches open what they keep for good
    threads, fds = threading.active_count(), _open_fds()
    capfd.readouterr()
    second = yoloswap.train("yolov5n", data=data, **TINY)
    assert second.folder == Path("runs/train/exp2") and (tmp_path / "runs/train/exp/weights/best.pt").is_file()
    assert threading.active_count() == threads
    assert _open_fds() <= fds
    assert capfd.readouterr().err == ""  # verbose=False: silent


def test_load_predict_equals_the_predict_command(trained, tmp_path, cli):
    data, run = trained
    images = data.parent / "images" / "val"
    det = yoloswap.load(run.best, device="cpu")
    results = list(det.predict(images, conf=0.01))
    code, _, _ = cli("predict", "--weights", str(run.best), "--source", str(images), "--conf", "0.01",
                     "--device", "cpu", "--workers", "0", "--out", str(tmp_path / "p"), "--no-save")
    assert code == 0
    written = json.loads((tmp_path / "p" / "predictions.json").read_text())
    assert sorted((r.to_json() for r in results), key=lambda r: r["image"]) == sorted(written, key=lambda r: r["image"])
    first = results[0]
    assert first.boxes.shape == (len(first.scores), 4) and first.classes.dtype.kind == "i"
    assert first.plot().shape == first.image.shape


def test_val_and_export_through_the_api(trained, cli):
    _, run = trained
    metrics = yoloswap.val(run.best, workers=0, device="cpu").metrics
    code, out, _ = cli("val", "--weights", str(run.best), "--json", "--workers", "0", "--device", "cpu")
    assert code == 0 and json.loads(out)["map50"] == pytest.approx(metrics["map50"])
    path = yoloswap.export(run.best, format="torchscript", out=run.folder / "model.torchscript")
    assert path.is_file() and yoloswap.load(path).kind == "torchscript"


@pytest.mark.parametrize("command, function", [("val", "val"), ("predict", "Detector.predict"), ("export", "export_spec")])
def test_a_keyword_shared_with_the_command_line_has_the_same_default(command, function):
    """No default is written twice: where the API and the CLI share an option, they agree (one place to change)."""
    import typer

    from yoloswap.cli.app import app
    from yoloswap.deploy.export import ExportSpec

    params = {p.name: p.default for p in typer.main.get_command(app).commands[command].params}
    if function == "export_spec":  # export's options are ExportSpec's fields; the CLI leaves opset to the spec
        api_defaults = {f.name: f.default for f in dataclasses.fields(ExportSpec)}
    else:
        target = yoloswap.Detector.predict if function == "Detector.predict" else getattr(yoloswap, function)
        api_defaults = {n: p.default for n, p in inspect.signature(target).parameters.items()
                        if p.default is not inspect.Parameter.empty}
    shared = {n for n in api_defaults if n in params and params[n] is not None}
    assert len(shared) >= 3, shared
    assert {n: api_defaults[n] for n in shared} == {n: params[n] for n in shared}
