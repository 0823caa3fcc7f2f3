"""`train --config FILE`: every training option from YAML, a run's own config.yaml replays that run, flags typed on
the command line win over the file, unknown keys get a "did you mean"."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from tests.make_data import ultralytics_set
from yoloswap.cli.app import main
from yoloswap.config.options import TrainOptions

TINY = ["--backbone", "yolov5n", "--epochs", "1", "--img-size", "64", "--batch-size", "4", "--workers", "0",
        "--device", "cpu"]


@pytest.fixture
def resolved(monkeypatch):
    """Run `yoloswap train ARGS` up to the trainer and return the TrainOptions it would train with."""
    import yoloswap.training.loop as trainer

    def run(*args: str) -> TrainOptions:
        seen = {}
        monkeypatch.setattr(trainer, "train", lambda options, **kw: seen.setdefault("options", options) and {})  # the metrics a run returns
        code = main(["train", *args])
        assert code == 0 and "options" in seen, code
        return seen["options"]

    return run


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A real one-epoch run with some non-default options, and the options it trained with."""
    import yoloswap.training.loop as trainer

    root = tmp_path_factory.mktemp("configrun")
    data = ultralytics_set(root / "data", names_as_dict=False)
    seen = {}
    real = trainer.train

    def recording(options, **kw):
        seen["options"] = options
        return real(options, **kw)

    trainer.train = recording
    try:
        code = main(["train", *TINY, "--data", str(data), "--out", str(root / "run"), "--lr", "0.02",
                     "--mosaic", "0.5", "--no-ema", "--neck-width", "0.5", "--close-mosaic", "0"])
    finally:
        trainer.train = real
    assert code == 0
    return root / "run", seen["options"]


@pytest.mark.slow
def test_a_runs_config_yaml_replays_the_same_resolved_options(finished_run, resolved, tmp_path):
    run, original = finished_run
    replayed = resolved("--config", str(run / "config.yaml"), "--out", str(tmp_path / "again"))
    recorded = yaml.safe_load((run / "config.yaml").read_text())["options"]
    assert replayed == TrainOptions.from_dict(recorded)
    # the run's config records what `auto` resolved to (here the preset's SGD, as --lr alone keeps it): the
    # replay trains with that, and with every other option exactly as the original command gave it
    assert recorded["optimizer"] == "sgd"
    assert replayed == dataclasses.replace(original, optimizer="sgd", bn=recorded["bn"])  # bn: resolved by the recipe rule too


@pytest.mark.slow
def test_flags_typed_on_the_command_line_override_the_file(finished_run, resolved, tmp_path):
    run, original = finished_run
    changed = resolved("--config", str(run / "config.yaml"), "--epochs", "4", "--ema", "--fliplr", "0",
                       "--out", str(tmp_path / "again"))
    assert (changed.epochs, changed.ema, changed.augment.fliplr) == (4, True, 0.0)
    assert changed == dataclasses.replace(original, epochs=4, ema=True, optimizer="sgd", bn="train",
                                          augment=dataclasses.replace(original.augment, fliplr=0.0))


def test_a_hand_written_file_gets_the_same_defaults_as_flags(resolved, tmp_path):
    data = ultralytics_set(tmp_path / "data", names_as_dict=False)
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump({
        "backbone": "yolov5n", "data": str(data), "lr": 0.005, "augment": {"mosaic": 0.25}, "degrees": 5.0,
        "neck_width": [64, 128, 256]}))
    options = resolved("--config", str(tmp_path / "mine.yaml"))
    assert options.data == str(data) and options.lr == 0.005
    assert options.augment.mosaic == 0.25 and options.augment.degrees == 5.0  # nested or flat, as the flags are
    assert options.neck_width == (64, 128, 256)
    assert (options.img_size, options.epochs) == (640, 100)  # a user's data set: the same defaults as --data gives
    assert resolved("--config", str(tmp_path / "mine.yaml"), "--img-size", "96").img_size == 96


@pytest.mark.parametrize(
    "text,message",
    [
        ("epochz: 3\n", "unknown field 'epochz'; did you mean 'epochs'?"),
        ("augment: {mosiac: 0.5}\n", "unknown field 'augment.mosiac'; did you mean 'mosaic'?"),
        ("epochs: many\n", "field 'epochs': "),
        ("ema: maybe\n", "field 'ema': "),
        ("augment: 3\n", "field 'augment' must be a mapping"),
        ("- epochs\n", "expected a mapping of training options"),
        ("epochs: [1\n", "malformed YAML"),
    ],
)
def test_a_bad_file_is_one_line_naming_file_and_field(cli, tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    code, out, err = cli("train", "--config", str(path))
    assert code == 1 and out == ""
    assert err.startswith(f"Error: {path}") and message in err and len(err.strip().splitlines()) == 1


def test_a_missing_file_says_so(cli, tmp_path):
    code, _, err = cli("train", "--config", str(tmp_path / "none.yaml"))
    assert code == 1 and "none.yaml: no such file" in err
