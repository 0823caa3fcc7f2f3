"""compare reports its noise: two runs of one backbone are told apart by their run folders, a latency difference
within timing noise earns no Pareto star, and ``--seeds K`` writes mean ± std with the rows it cannot separate."""

from __future__ import annotations

import csv
import re

import torch

from yoloswap.reports import compare as cmp
from yoloswap.reports.compare import CompareRow, mark_pareto, write_report


def row(name, map_, latency, run=None, p90=None):
    return CompareRow(backbone=name, map=map_, map50=map_ * 2, latency_ms=latency,
                      latency_p90_ms=p90 if p90 is not None else latency * 1.05, onnx_ms=None, params_m=1.0,
                      gflops=1.0, img_size=64, device="cpu", epochs=1, run=run or f"runs/{name}")


def test_two_runs_of_one_backbone_are_named_by_their_run_folders(tmp_path):
    rows = [row("yolov5n", 0.30, 40.0, "runs/train/exp3"), row("yolov5n", 0.28, 44.0, "runs/train/exp7"),
            row("mobilenetv3-small", 0.2, 30.0)]
    paths = write_report(rows, tmp_path)
    md = paths["md"].read_text()
    assert "`yolov5n (exp3)`" in md and "`yolov5n (exp7)`" in md
    assert "`mobilenetv3-small`" in md  # a backbone that appears once keeps its plain name
    with open(paths["csv"]) as f:
        labels = [r["label"] for r in csv.DictReader(f)]  # what compare.png writes beside each point
    assert sorted(labels) == ["mobilenetv3-small", "yolov5n (exp3)", "yolov5n (exp7)"]


def test_a_latency_difference_within_timing_noise_earns_no_pareto_star():
    # Identical models: 4 ms apart at 40 ms is timing noise, so the more accurate one beats the other.
    marked = mark_pareto([row("a", 0.30, 44.0, "r/1"), row("a", 0.28, 40.0, "r/2")])
    assert [r.pareto for r in marked] == [True, False]
    # Beyond the noise (twice as fast) the faster, less accurate model stays on the front.
    marked = mark_pareto([row("big", 0.30, 80.0), row("small", 0.28, 40.0)])
    assert [r.pareto for r in marked] == [True, True]
    # A wide p90 spread widens the tie: 15 ms apart, but each timing scatters by 20 ms.
    marked = mark_pareto([row("a", 0.30, 100.0, p90=120.0), row("b", 0.28, 85.0, p90=105.0)])
    assert [r.pareto for r in marked] == [True, False]


MAPS = {"near-a": [0.30, 0.32, 0.34], "near-b": [0.31, 0.33, 0.35], "far": [0.50, 0.51, 0.52]}


def test_compare_seeds_writes_mean_std_and_which_rows_are_not_distinguishable(tmp_path, monkeypatch):
    from yoloswap.config.options import TrainOptions

    trained = []

    def train(options, out, exist_ok, resume, console):
        trained.append((options.backbone, options.seed, out.name))

    def measured(run, device):
        name, seed = re.fullmatch(r"(.+)-seed(\d+)", run.name).groups()
        return row(name, MAPS[name][int(seed) - 5], 10.0, str(run))

    monkeypatch.setattr(cmp, "row_from_run", measured)
    rows = cmp.compare_backbones(list(MAPS), TrainOptions(epochs=1, seed=5), tmp_path, torch.device("cpu"), train,
                                 seeds=3)
    assert [(b, s) for b, s, _ in trained] == [(b, s) for b in MAPS for s in (5, 6, 7)]
    assert trained[0][2] == "near-a-seed5"
    by_name = {r.backbone: r for r in rows}
    assert by_name["near-a"].map == 0.32 and by_name["near-a"].map_std == 0.02 and by_name["near-a"].seeds == 3

    paths = write_report(rows, tmp_path)
    with open(paths["csv"]) as f:
        table = {r["backbone"]: r for r in csv.DictReader(f)}
    assert table["near-a"]["map"] == "0.32" and table["near-a"]["map_std"] == "0.02"
    assert table["near-a"]["ties"] == "near-b" and table["near-b"]["ties"] == "near-a"
    assert table["far"]["ties"] == ""  # 0.18 apart: distinguishable
    md = paths["md"].read_text()
    assert "0.3200 ± 0.0200" in md and "not distinguishable from" in md
    line = next(l for l in md.splitlines() if "`far`" in l)
    assert line.rstrip(" |").endswith("-")


def test_compare_runs_takes_several_folders_after_one_flag(cli, tmp_path):
    code, _, err = cli("compare", "--runs", str(tmp_path / "a"), str(tmp_path / "b"))
    assert code != 0 and f"{tmp_path / 'a'}: not a finished run folder" in err  # both accepted; the first measured
    code, _, err = cli("compare", "--backbones", "yolov5n", str(tmp_path / "a"))
    assert code == 2 and "follow --runs" in err
