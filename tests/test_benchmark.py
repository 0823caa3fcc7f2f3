"""benchmark: latency statistics, and the command's figures for each runtime (values, never speed, asserted)."""

from __future__ import annotations

import json

import pytest

from yoloswap.deploy.benchmark import summarise, time_calls


def test_median_p90_and_throughput_from_call_times():
    t = summarise("pytorch", "cpu", 64, batch=4, times_ms=[10, 12, 11, 50, 13, 9, 10, 11, 12, 14])
    assert t.median_ms == 11.5
    assert t.p90_ms == 14  # the 9th of 10 sorted times; the one 50 ms outlier stays out of it
    assert t.images_per_s == pytest.approx(4 * 1000 / 11.5, rel=1e-3)


def test_warm_up_calls_are_not_timed():
    calls = []
    times = time_calls(lambda: calls.append(1), warmup=3, iters=5)
    assert len(calls) == 8 and len(times) == 5


def test_benchmark_command_reports_both_runtimes_params_and_gflops(cli):
    pytest.importorskip("onnxruntime")
    code, out, err = cli("benchmark", "--backbone", "yolov5n", "--img-size", "64", "--num-classes", "3", "--device",
                         "cpu", "--iters", "3", "--warmup", "1", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["backbone"] == "yolov5n"
    assert report["params_m"] == pytest.approx(1.77, abs=0.05)  # YOLOv5n with a 3-class head
    assert report["gflops"] > 0
    assert [t["runtime"] for t in report["timings"]] == ["pytorch", "onnxruntime"]
    for t in report["timings"]:
        assert t["img_size"] == 64 and t["batch"] == 1 and t["device"] == "cpu"
        assert 0 < t["median_ms"] <= t["p90_ms"] and t["images_per_s"] > 0


def test_benchmark_needs_exactly_one_model(cli, tmp_path):
    code, _, err = cli("benchmark")
    assert code == 2 and "give either --weights FILE or --backbone NAME" in err
    code, _, err = cli("benchmark", "--backbone", "yolov5n", "--runtimes", "tensorrt")
    assert code == 2 and "unknown ['tensorrt']" in err
