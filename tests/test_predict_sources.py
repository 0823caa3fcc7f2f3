"""predict reads every source a user names (images, folders, globs, lists, videos, webcams, streams) and writes
annotated pictures, predictions and YOLO labels that yoloswap's own loader reads back."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from tests.test_export import NAMES, write_checkpoint  # noqa: E402
from yoloswap.deploy.sources import LIVE_QUEUE, CaptureReader, open_source  # noqa: E402
from yoloswap.errors import DataError  # noqa: E402

SIZE = 64


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path, _ = write_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt", "yolov5n", SIZE)
    return path


def frames(n: int, w: int = 80, h: int = 48):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def write_video(path: Path, n: int = 6, fps: float = 10.0, w: int = 80, h: int = 48) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for f in frames(n, w, h):
        writer.write(f)
    writer.release()
    return path


def write_images(folder: Path, n: int = 3) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, f in enumerate(frames(n)):
        paths.append(folder / f"img{i}.png")
        cv2.imwrite(str(paths[-1]), f)
    return paths


def low_conf(*extra):
    return ("--conf", "0.001", "--device", "cpu", "--workers", "0", *extra)


def test_a_video_gives_an_annotated_video_of_the_same_frames_and_size_and_one_json_line_per_frame(cli, weights, tmp_path):
    video = write_video(tmp_path / "clip.mp4", n=6, fps=10.0)
    code, out, err = cli("predict", "-w", str(weights), "--source", str(video), "--out", str(tmp_path / "p"),
                         *low_conf())
    assert code == 0, err
    cap = cv2.VideoCapture(str(tmp_path / "p" / "clip.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    assert (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (80, 48)
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(10.0)
    lines = [json.loads(x) for x in (tmp_path / "p" / "predictions.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in lines] == list(range(6))
    assert [r["time_s"] for r in lines] == pytest.approx([i / 10 for i in range(6)])
    assert "in 6 frames" in out and "ms pre-process" in err and "ms inference" in err


def test_save_txt_labels_read_back_by_the_ultralytics_loader_give_the_json_boxes(cli, weights, tmp_path):
    from yoloswap.data.formats.ultralytics import parse_label_file

    write_images(tmp_path / "imgs")
    code, _, err = cli("predict", "-w", str(weights), "--source", str(tmp_path / "imgs"), "--out",
                       str(tmp_path / "p"), "--save-txt", "--max-det", "5", *low_conf())
    assert code == 0, err
    records = json.loads((tmp_path / "p" / "predictions.json").read_text())
    assert len(records) == 3 and all(len(r["detections"]) == 5 for r in records)  # random weights: many boxes
    for record in records:
        stem = Path(record["image"]).stem
        boxes, classes, _ = parse_label_file(tmp_path / "p" / "labels" / f"{stem}.txt", len(NAMES), 80, 48)
        want = np.array([d["box"] for d in record["detections"]])
        np.testing.assert_allclose(boxes, want, atol=0.05)
        assert classes.tolist() == [d["class_id"] for d in record["detections"]]
        assert (tmp_path / "p" / f"{stem}.jpg").is_file()


def test_save_conf_adds_the_score_column_and_classes_filters_by_name(cli, weights, tmp_path):
    write_images(tmp_path / "imgs", 1)
    code, _, err = cli("predict", "-w", str(weights), "--source", str(tmp_path / "imgs" / "img0.png"), "--out",
                       str(tmp_path / "p"), "--save-txt", "--save-conf", "--save-crop", "--classes", "green",
                       "--max-det", "3", *low_conf())
    assert code == 0, err
    det = json.loads((tmp_path / "p" / "predictions.json").read_text())[0]["detections"]
    assert det and {d["class"] for d in det} == {"green"}
    rows = [line.split() for line in (tmp_path / "p" / "labels" / "img0.txt").read_text().splitlines()]
    assert [len(r) for r in rows] == [6] * len(det)
    assert [float(r[5]) for r in rows] == pytest.approx([d["score"] for d in det], abs=1e-3)
    assert len(list((tmp_path / "p" / "crops" / "green").glob("*.jpg"))) == len(det)


def test_globs_and_txt_lists_name_images(tmp_path):
    paths = write_images(tmp_path / "imgs")
    assert open_source(str(tmp_path / "imgs" / "*.png")).files == paths
    listing = tmp_path / "list.txt"
    listing.write_text("imgs/img2.png\nimgs/img0.png\n")
    assert open_source(listing).files == [paths[2], paths[0]]


def test_a_digit_is_a_webcam_not_a_missing_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=r"webcam 0 cannot be opened"):
        open_source("0")


# ------------------------------------------------------------------------------------------------ bad sources
def test_bad_sources_are_one_line_errors_with_a_nonzero_exit(cli, weights, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 10)
    port = free_port()
    cases = [
        (str(tmp_path / "missing.jpg"), "no such file or folder"),
        (str(broken), "OpenCV cannot open it"),
        (f"http://127.0.0.1:{port}/video.mjpg", "cannot open the stream"),
        ("ftp://example.com/video.mp4", "URL scheme 'ftp' not supported"),
    ]
    for source, message in cases:
        code, _, err = cli("predict", "-w", str(weights), "--source", source, "--out", str(tmp_path / "p"),
                           "--device", "cpu")
        assert code == 1, (source, err)
        assert message in err and len(err.strip().splitlines()) == 1, err


# -------------------------------------------------------------------------------------------- a live stream
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MjpegServer:
    """Serves ``count`` JPEG frames as multipart MJPEG over loopback, then closes and stops listening."""

    def __init__(self, count: int, fps: float = 20.0) -> None:
        jpegs = [cv2.imencode(".jpg", f)[1].tobytes() for f in frames(count)]

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                for data in jpegs:
                    self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n")
                    self.wfile.write(f"Content-Length: {len(data)}\r\n\r\n".encode() + data + b"\r\n")
                    time.sleep(1 / fps)
                server.served = True

            def log_message(self, *args):
                pass

        server = self
        self.served = False
        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/video.mjpg"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.httpd.handle_request()  # the probe that reads size and fps
        self.httpd.handle_request()  # the reader
        self.httpd.server_close()  # the stream drops: reconnects are refused


def test_a_stream_is_predicted_and_when_it_drops_predict_ends_in_one_line_keeping_its_output(cli, weights, tmp_path):
    server = MjpegServer(count=15)
    code, out, err = cli("predict", "-w", str(weights), "--source", server.url, "--out", str(tmp_path / "p"),
                         *low_conf())
    assert code == 1
    error_lines = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1 and "the stream dropped and could not be reopened" in error_lines[0]
    lines = [json.loads(x) for x in (tmp_path / "p" / "predictions.jsonl").read_text().splitlines()]
    assert len(lines) >= 3 and [r["frame"] for r in lines] == sorted(r["frame"] for r in lines)
    cap = cv2.VideoCapture(str(tmp_path / "p" / "stream.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == len(lines)  # the video was closed properly


def test_a_live_source_drops_stale_frames_instead_of_queueing_them(tmp_path):
    server = MjpegServer(count=30, fps=200.0)
    source = open_source(server.url)
    reader = CaptureReader(source)
    try:
        time.sleep(1.0)  # the consumer is slow: nothing read for a while
        assert reader.queue.qsize() <= LIVE_QUEUE
        got = []
        with pytest.raises(DataError):
            for frame in reader:
                got.append(frame.index)
        assert reader.dropped > 0 and got == sorted(got) and len(got) < 30
    finally:
        reader.stop()


# ------------------------------------------------------------------------------------------ a file over HTTP
class FileServer:
    """Serves the files of ``folder`` over loopback HTTP, as ``python -m http.server`` does, until closed."""

    def __init__(self, folder: Path) -> None:
        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(folder), **kwargs)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_video_served_over_http_is_a_file_every_frame_once_in_order_then_exit_0(cli, weights, tmp_path):
    (tmp_path / "served").mkdir()
    write_video(tmp_path / "served" / "clip.mp4", n=12)
    server = FileServer(tmp_path / "served")
    deadline = threading.Timer(30, server.close)  # a reader that reopens the file forever fails instead of hanging
    deadline.start()
    try:
        start = time.monotonic()
        code, out, err = cli("predict", "-w", str(weights), "--source", f"{server.base}/clip.mp4",
                             "--out", str(tmp_path / "p"), *low_conf())
        took = time.monotonic() - start
    finally:
        deadline.cancel()
        server.close()
    assert code == 0, err
    lines = [json.loads(x) for x in (tmp_path / "p" / "predictions.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in lines] == list(range(12))  # not reopened at its end, no frame skipped as stale
    assert took < 30, took
    cap = cv2.VideoCapture(str(tmp_path / "p" / "clip.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12


def test_urls_naming_a_file_are_finite_and_the_others_live(tmp_path):
    (tmp_path / "served").mkdir()
    write_video(tmp_path / "served" / "clip.mp4", n=4)
    cv2.imwrite(str(tmp_path / "served" / "photo.jpg"), frames(1)[0])
    (tmp_path / "served" / "feed").write_bytes((tmp_path / "served" / "clip.mp4").read_bytes())  # no suffix
    server = FileServer(tmp_path / "served")
    try:
        video = open_source(f"{server.base}/clip.mp4?token=1")
        photo = open_source(f"{server.base}/photo.jpg")
        counted = open_source(f"{server.base}/feed")  # no file suffix, but it reports its frame count
        assert (video.kind, video.live, video.frame_count, video.stem) == ("url", False, 4, "clip")
        assert (photo.kind, photo.live, photo.stem) == ("url", False, "photo")
        assert [f.index for f in photo.frames()] == [0]
        assert (counted.kind, counted.live, counted.frame_count) == ("stream", False, 4)
    finally:
        server.close()  # an MJPEG stream, which reports no frame count, stays live: see the tests above
