"""Predict sources behind one reader interface: what ``--source`` names becomes a :class:`Source`.

A source is either a list of image files (``files``; predict decodes them in DataLoader workers) or a capture
(video file, webcam, stream) whose frames come from a reader thread (``frames()``). The table ``SOURCES`` decides
which, in order: the first entry whose test accepts the text opens it, so adding a source is a function and a line.

A capture is finite or live. Finite: a video file, a URL that names a video or image file (its path ends in one of
their suffixes), and any capture that reports a frame count; every frame is read once, in order, and the end is
the end. Live: webcams and streams (rtsp, rtmp, tcp, http without a file suffix); the reader keeps only the newest
few frames (``LIVE_QUEUE``): when the model is slower than the camera, stale frames are dropped, never queued
without bound. A live stream that drops is reopened ``RECONNECTS`` times before it ends with a one-line
:class:`DataError`.
"""

from __future__ import annotations

import glob
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from yoloswap.errors import DataError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv")
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "tcp", "http", "https")
RECONNECTS = 3  # tries to reopen a dropped stream
RECONNECT_WAIT_S = 0.5
LIVE_QUEUE = 2  # newest frames kept for a live source (older ones are dropped)
FILE_QUEUE = 16  # frames decoded ahead of the model for a video file (the reader waits, nothing is dropped)
OPEN_TIMEOUT_MS = 5000


@dataclass
class Frame:
    """One decoded picture: HxWx3 uint8 RGB, where it came from, its index and time in the capture."""

    image: np.ndarray
    name: str  # output stem: the file's stem, or the capture's stem (frames share it)
    index: int = 0  # frame number in a capture (0 for an image file)
    time_s: float | None = None  # seconds into the capture (video: index / fps; live: since it opened)
    path: Path | None = None  # the image file, when there is one


@dataclass
class Source:
    """What predict reads. ``files`` for image sources; ``open_capture`` for video, webcam and streams."""

    kind: str  # image | folder | glob | list | video | url (a file over a URL) | webcam | stream
    text: str  # as the user gave it
    files: list[Path] = field(default_factory=list)
    open_capture: Callable[[], object] | None = None  # -> cv2.VideoCapture (opened)
    live: bool = False
    fps: float | None = None
    size: tuple[int, int] | None = None  # (width, height) of a capture
    frame_count: int | None = None  # frames of a finite capture (None: live or unknown)

    @property
    def is_capture(self) -> bool:
        return self.open_capture is not None

    @property
    def stem(self) -> str:
        if self.kind == "webcam":
            return f"webcam{self.text}"
        if self.kind == "stream":
            return "stream"
        if self.kind == "url":
            return Path(urlsplit(self.text).path).stem or "url"
        return Path(self.text).stem

    def frames(self) -> Iterator[Frame]:
        """Frames of a capture, read by a thread (see the module docstring for live sources)."""
        reader = CaptureReader(self)
        try:
            yield from reader
        finally:
            reader.stop()


# ----------------------------------------------------------------------------------------------- the openers
def _image_files(paths: list[Path], text: str, kind: str) -> Source:
    from yoloswap.data.images import is_image_file

    files = [p for p in paths if p.is_file() and is_image_file(p)]
    if not files:
        raise DataError(f"--source {text}: no images (jpg, png, bmp, webp) or videos found")
    return Source(kind, text, files=files)


def open_image(text: str) -> Source:
    from yoloswap.data.images import IMAGE_SUFFIXES, is_image_file

    path = Path(text)
    if not is_image_file(path):
        raise DataError(f"--source {text}: not an image ({', '.join(s[1:] for s in IMAGE_SUFFIXES)}); give an image "
                        "file or a folder of images")  # videos, .txt lists, globs, webcams and URLs are caught first
    return Source("image", text, files=[path])


def open_folder(text: str) -> Source:
    return _image_files(sorted(Path(text).rglob("*")), text, "folder")


def open_glob(text: str) -> Source:
    return _image_files([Path(p) for p in sorted(glob.glob(text, recursive=True))], text, "glob")


def open_list(text: str) -> Source:
    """A .txt file with one image path a line (relative paths are read from the list's folder)."""
    base = Path(text).parent
    lines = [line.strip() for line in Path(text).read_text(encoding="utf-8-sig").splitlines()]
    paths = [Path(line) if Path(line).is_absolute() else base / line for line in lines if line and line[0] != "#"]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DataError(f"--source {text}: {len(missing)} listed file(s) do not exist (e.g. {missing[0]})")
    return _image_files(paths, text, "list")


def _capture(target, what: str):
    import cv2

    if isinstance(target, str) and "://" in target:
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, OPEN_TIMEOUT_MS]
        cap = cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
    else:
        cap = cv2.VideoCapture(target)
    if not cap.isOpened():
        cap.release()
        raise DataError(f"--source {what}: OpenCV cannot open it")
    return cap


def _capture_source(kind: str, text: str, target, live: bool) -> Source:
    """Open once to read size, frame rate and frame count (and to fail now, in one line, when it cannot be
    opened). A capture that reports a frame count is finite, whatever its kind."""
    import cv2

    cap = _capture(target, text)
    fps = cap.get(cv2.CAP_PROP_FPS)
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if kind != "webcam" else 0  # live streams report <= 0
    cap.release()
    if count > 0:
        live = False
    fps = fps if 0 < fps < 1000 else (30.0 if live else 25.0)  # streams often report 0 or 90000
    return Source(kind, text, open_capture=lambda: _capture(target, text), live=live, fps=fps,
                  size=size if min(size) > 0 else None, frame_count=count if count > 0 else None)


def open_video(text: str) -> Source:
    return _capture_source("video", text, text, live=False)


def open_webcam(text: str) -> Source:
    try:
        return _capture_source("webcam", text, int(text), live=True)
    except DataError:
        raise DataError(f"--source {text}: webcam {text} cannot be opened (no camera with that index, or it is "
                        "in use)") from None


def open_stream(text: str) -> Source:
    """A URL: a file when its path names a video or an image (read once, like a file), else a live stream."""
    from yoloswap.data.images import IMAGE_SUFFIXES

    scheme = text.split("://", 1)[0].lower()
    if scheme not in STREAM_SCHEMES:
        raise DataError(f"--source {text}: URL scheme {scheme!r} not supported; use one of "
                        f"{', '.join(s + '://' for s in STREAM_SCHEMES)}")
    names_file = Path(urlsplit(text).path).suffix.lower() in VIDEO_SUFFIXES + IMAGE_SUFFIXES
    try:
        return _capture_source("url" if names_file else "stream", text, text, live=not names_file)
    except DataError:
        what = "the file" if names_file else "the stream"
        raise DataError(f"--source {text}: cannot open {what} (unreachable, or not a video"
                        f"{' or an image' if names_file else ' stream'})") from None


def _is_url(text: str) -> bool:
    return "://" in text


def _is_video(text: str) -> bool:
    return Path(text).suffix.lower() in VIDEO_SUFFIXES and Path(text).is_file()


def _is_glob(text: str) -> bool:
    return any(c in text for c in "*?[") and not Path(text).exists()


# first match wins: (kind, test on the --source text, opener)
SOURCES: list[tuple[str, Callable[[str], bool], Callable[[str], Source]]] = [
    ("stream", _is_url, open_stream),
    ("webcam", str.isdigit, open_webcam),
    ("glob", _is_glob, open_glob),
    ("folder", lambda t: Path(t).is_dir(), open_folder),
    ("video", _is_video, open_video),
    ("list", lambda t: t.lower().endswith(".txt") and Path(t).is_file(), open_list),
    ("image", lambda t: Path(t).is_file(), open_image),
]


def open_source(text: str | Path) -> Source:
    """The :class:`Source` for what ``--source`` names; anything unknown is a one-line :class:`DataError`."""
    text = str(text)
    for _kind, accepts, opener in SOURCES:
        if accepts(text):
            return opener(text)
    raise DataError(f"--source {text}: no such file or folder (nor a glob, a webcam index or a stream URL)")


# ------------------------------------------------------------------------------------------- the reader thread
_END = object()


class CaptureReader:
    """Reads a capture in a thread into a bounded queue; iterating yields :class:`Frame` until the end.

    A video file waits for the consumer (every frame is kept). A live source keeps the newest ``LIVE_QUEUE``
    frames and drops older ones; when a read fails it reopens the capture ``RECONNECTS`` times, then ends with a
    DataError raised in the consumer.
    """

    def __init__(self, source: Source) -> None:
        self.source = source
        self.queue: queue.Queue = queue.Queue(LIVE_QUEUE if source.live else FILE_QUEUE)
        self.dropped = 0
        self._stop = threading.Event()
        self._cap = source.open_capture()
        self._thread = threading.Thread(target=self._run, name=f"yoloswap-{source.kind}-reader", daemon=True)
        self._thread.start()

    def _put(self, item) -> None:
        while not self._stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                if self.source.live and item is not _END and not isinstance(item, DataError):
                    try:  # a live source: the oldest frame goes, the newest is kept
                        self.queue.get_nowait()
                        self.dropped += 1
                    except queue.Empty:
                        pass

    def _reopen(self) -> bool:
        self._cap.release()
        for _ in range(RECONNECTS):
            if self._stop.wait(RECONNECT_WAIT_S):
                return False
            try:
                self._cap = self.source.open_capture()
                return True
            except DataError:
                continue
        return False

    def _run(self) -> None:
        import cv2

        index, start = 0, time.monotonic()
        try:
            while not self._stop.is_set():
                ok, bgr = self._cap.read()
                if not ok:
                    if not self.source.live:
                        break
                    if self._reopen():
                        continue
                    self._put(DataError(f"--source {self.source.text}: the stream dropped and could not be "
                                        f"reopened ({RECONNECTS} tries); {index} frames were read"))
                    return
                t = index / self.source.fps if not self.source.live else time.monotonic() - start
                self._put(Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), self.source.stem, index, round(t, 4)))
                index += 1
        finally:
            self._cap.release()
        self._put(_END)

    def __iter__(self) -> Iterator[Frame]:
        while True:
            item = self.queue.get()
            if item is _END:
                return
            if isinstance(item, DataError):
                raise item
            yield item

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
