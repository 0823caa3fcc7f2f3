"""compare: the Pareto front of a table, the report files, resuming, and comparing finished runs."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from PIL import Image

from yoloswap.reports import compare as cmp
from yoloswap.reports.compare import CompareRow, mark_pareto, markdown_table, write_report


def row(name, map_, latency, params=1.0):
    return CompareRow(backbone=name, map=map_, map50=map_ * 2, latency_ms=latency, latency_p90_ms=latency * 1.1,
                      onnx_ms=None, params_m=params, gflops=1.0, img_size=64, device="cpu", epochs=1, run=f"runs/{name}")


TABLE = [
    row("fast", 0.20, 5.0),
    row("balanced", 0.30, 10.0),
    row("slow-worse", 0.25, 20.0),  # slower than "balanced" and less accurate: dominated
    row("best", 0.40, 30.0),
    row("tie-slower", 0.40, 35.0),  # as accurate as "best" but slower: dominated
    row("equal-twin", 0.20, 5.0),  # identical to "fast": neither beats the other
]


def test_pareto_marks_rows_no_other_row_beats_on_both_speed_and_accuracy():
    marked = {r.backbone: r.pareto for r in mark_pareto(TABLE)}
    assert marked == {"fast": True, "balanced": True, "slow-worse": False, "best": True, "tie-slower": False,
                      "equal-twin": True}


def test_markdown_is_sorted_by_map_and_stars_the_front():
    lines = [l for l in markdown_table(mark_pareto(TABLE)).splitlines() if l.startswith("| ") and "`" in l]
    names = [l.split("`")[1] for l in lines]
    assert names[:2] == ["best", "tie-slower"] and names[2] == "balanced" and names[-2:] == ["fast", "equal-twin"]
    starred = {l.split("`")[1] for l in lines if l.startswith("| ★")}
    assert starred == {"fast", "balanced", "best", "equal-twin"}


def test_report_writes_csv_markdown_and_chart(tmp_path):
    paths = write_report(TABLE, tmp_path, title="hand-made")
    with open(paths["csv"]) as f:
        rows = list(csv.DictReader(f))
    assert [r["backbone"] for r in rows][0] == "best" and len(rows) == len(TABLE)
    assert {r["backbone"]: r["pareto"] for r in rows}["slow-worse"] == "False"
    with Image.open(paths["png"]) as png:
        assert png.format == "PNG" and png.width > 400


def test_a_finished_backbone_is_reused_and_an_interrupted_one_resumes(tmp_path, monkeypatch):
    from tests.test_export import write_checkpoint
    from yoloswap.checkpoint import load_checkpoint, save_checkpoint
    from yoloswap.config.options import TrainOptions

    out = tmp_path / "cmp"
    done = out / "runs" / "yolov5n"
    done.mkdir(parents=True)
    (done / cmp.ROW_FILE).write_text(json.dumps(row("yolov5n", 0.3, 4.0).to_dict()))
    half = out / "runs" / "mobilenetv3-small"
    path, _ = write_checkpoint(tmp_path / "tmp.pt")
    ckpt = load_checkpoint(path)
    ckpt["config"]["options"]["epochs"] = 3  # epoch 0 of 3 saved: interrupted
    save_checkpoint(ckpt, half / "weights" / "last.pt")

    calls = []
    def train(options, out, exist_ok, resume, console):
        calls.append((options.backbone, out, resume))
    monkeypatch.setattr(cmp, "row_from_run", lambda run, device: row(run.name, 0.1, 2.0))
    rows = cmp.compare_backbones(["yolov5n", "mobilenetv3-small", "timm:resnet18"], TrainOptions(epochs=3), out,
                                 torch.device("cpu"), train)
    assert [r.backbone for r in rows] == ["yolov5n", "mobilenetv3-small", "timm-resnet18"]
    assert calls == [("mobilenetv3-small", half, half),  # resumed
                     ("timm:resnet18", out / "runs" / "timm-resnet18", None)]  # yolov5n: not trained again
    assert (out / "runs" / "timm-resnet18" / cmp.ROW_FILE).is_file()


@pytest.mark.slow
def test_compare_two_backbones_then_compare_their_run_folders(cli, tmp_path):
    from tests.make_data import ultralytics_set

    data = ultralytics_set(tmp_path / "data", names_as_dict=False)
    out = tmp_path / "cmp"
    code, stdout, err = cli("compare", "--backbones", "yolov5n,mobilenetv3-small", "--data", str(data), "--epochs", "1",
                            "--img-size", "64", "--batch-size", "4", "--weights", "none", "--workers", "0",
                            "--device", "cpu", "--out", str(out))
    assert code == 0, err
    for name in ("compare.csv", "compare.md", "compare.png"):
        assert (out / name).is_file()
    with open(out / "compare.csv") as f:
        table = list(csv.DictReader(f))
    assert {r["backbone"] for r in table} == {"yolov5n", "mobilenetv3-small"}
    assert all(float(r["latency_ms"]) > 0 and float(r["params_m"]) > 0 and r["epochs"] == "1" for r in table)
    assert any(r["pareto"] == "True" for r in table)
    assert "★" in (out / "compare.md").read_text()

    code, _, err = cli("compare", "--runs", str(out / "runs" / "yolov5n"), "--runs", str(out / "runs" / "mobilenetv3-small"),
                       "--device", "cpu", "--out", str(tmp_path / "again"))
    assert code == 0, err
    with open(tmp_path / "again" / "compare.csv") as f:
        again = {r["backbone"]: r for r in csv.DictReader(f)}
    assert {k: v["map"] for k, v in again.items()} == {r["backbone"]: r["map"] for r in table}


def test_compare_needs_backbones_or_runs(cli, tmp_path):
    code, _, err = cli("compare")
    assert code == 2 and "give either --backbones" in err
    code, _, err = cli("compare", "--runs", str(tmp_path))
    assert code != 0 and "not a finished run folder" in err


def test_accuracy_falls_back_to_the_best_epoch_of_metrics_csv(tmp_path):
    (tmp_path / "metrics.csv").write_text("epoch,metrics/mAP50,metrics/mAP50-95\n1,0.2,0.1\n2,,\n3,0.5,0.3\n4,0.4,0.25\n")
    assert cmp._accuracy({"metrics": {}}, tmp_path) == {"map": 0.3, "map50": 0.5}
    assert cmp._accuracy({"metrics": {"map": 0.7, "map50": 0.9}}, tmp_path) == {"map": 0.7, "map50": 0.9}


def test_a_misspelled_backbone_is_refused_before_anything_trains(cli, tmp_path, monkeypatch):
    import yoloswap.training.loop as trainer

    trained = []
    monkeypatch.setattr(trainer, "train", lambda options, **kw: trained.append(options.backbone))
    out = tmp_path / "cmp"
    code, _, err = cli("compare", "--backbones", "yolov5n,convnxt-tiny", "--epochs", "1", "--out", str(out))
    assert code == 2 and "did you mean 'convnext-tiny'" in err
    assert trained == [] and not out.exists()


def test_the_epochs_column_counts_the_epochs_trained_not_the_best_checkpoints(tmp_path):
    """A run whose best mAP came at epoch 2 of 3 trained 3 epochs; its best.pt says epoch index 1."""
    (tmp_path / "metrics.csv").write_text("epoch,metrics/mAP50-95\n1,0.1\n2,0.3\n3,0.2\n")
    assert cmp.epochs_trained(tmp_path, {"epoch": 1}) == 3
    assert cmp.epochs_trained(tmp_path / "elsewhere", {"epoch": 1}) == 2  # no metrics.csv: the checkpoint's
