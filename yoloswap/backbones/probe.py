"""The probe: a dummy tensor through the backbone, the single source of channel truth.

Everything after it (neck, head, ``info``, training) reads the channels and strides measured here; no channel
number is ever written by hand. On the meta device the probe allocates nothing and computes nothing, so it is
cheap enough to run every time a model is assembled.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from typing import TYPE_CHECKING

from yoloswap.backbones import LEVEL_STRIDES
from yoloswap.device import resolve_device
from yoloswap.errors import BackboneRefused, UsageError, YoloswapError
from yoloswap.home import read_remembered, remember, remembered_path
from yoloswap.config.presets import Preset

if TYPE_CHECKING:  # torch is imported inside functions: a cached probe needs none of it
    import torch

    from yoloswap.backbones.adapter import FeatureBackbone



@dataclass(frozen=True)
class ProbeResult:
    backbone: str
    channels: tuple[int, int, int]
    strides: tuple[int, int, int]
    shapes: tuple[tuple[int, int, int, int], ...]  # NCHW per level
    img_size: tuple[int, int]
    params: int
    device: str
    seconds: float  # build + forward
    taps: tuple[str, ...]

    def to_dict(self) -> dict:
        d = asdict(self)
        for key in ("channels", "strides", "img_size", "taps"):
            d[key] = list(d[key])
        d["shapes"] = [list(s) for s in self.shapes]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ProbeResult":
        return cls(
            backbone=d["backbone"],
            channels=tuple(d["channels"]),
            strides=tuple(d["strides"]),
            shapes=tuple(tuple(s) for s in d["shapes"]),
            img_size=tuple(d["img_size"]),
            params=int(d["params"]),
            device=d["device"],
            seconds=float(d["seconds"]),
            taps=tuple(d["taps"]),
        )


def parse_img_size(value: str | int | tuple[int, int]) -> tuple[int, int]:
    """``640`` or ``"640"`` → (640, 640); ``"512x384"`` → (512, 384) as (height, width)."""
    if isinstance(value, tuple):
        h, w = value
    elif isinstance(value, int):
        h = w = value
    else:
        parts = str(value).lower().replace("×", "x").split("x")
        try:
            nums = [int(p) for p in parts]
        except ValueError:
            raise UsageError(f"--img-size '{value}' is not an int or HxW (e.g. 640 or 512x384)") from None
        if len(nums) not in (1, 2):
            raise UsageError(f"--img-size '{value}' is not an int or HxW (e.g. 640 or 512x384)")
        h, w = (nums[0], nums[0]) if len(nums) == 1 else nums
    if h <= 0 or w <= 0 or h % 32 or w % 32:
        raise UsageError(f"--img-size {h}x{w}: both sides must be positive multiples of 32 (the largest stride)")
    return h, w


def probe_backbone(backbone: "FeatureBackbone", img_size: tuple[int, int], name: str = "") -> ProbeResult:
    """Measure ``backbone`` where it lives (its parameters' device); eval mode, no grad, mode restored."""
    import torch

    param = next(backbone.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    h, w = img_size
    start = time.perf_counter()
    try:
        feats = _forward(backbone, (h, w), device)
    except Exception as exc:  # the library's own failure, e.g. a window size the input does not divide
        from yoloswap.backbones.construct import cause

        hint = _size_hint(backbone, device)  # the size that works, when one can be found, says more than the cause
        raise BackboneRefused(
            f"backbone '{name}' does not run on a {h}x{w} input" + (hint or f" (the model's code stops: {cause(exc)})")
        ) from None
    seconds = time.perf_counter() - start
    return _result(backbone, feats, img_size, name, device, seconds)


def _forward(backbone: "FeatureBackbone", size: tuple[int, int], device) -> list:
    """One no-grad forward of a zero image in eval mode, the caller's train/eval mode restored.

    torch.fx prints its generated code to stderr when a traced model fails; that text is held back (and
    replayed only when the forward succeeds, so library warnings still reach the user).
    """
    import contextlib
    import io
    import sys

    import torch

    was_training = backbone.training
    backbone.eval()
    held = io.StringIO()
    try:
        with torch.no_grad(), contextlib.redirect_stderr(held):
            feats = backbone(torch.zeros(1, 3, *size, device=device))
    finally:
        backbone.train(was_training)
    sys.stderr.write(held.getvalue())
    return feats


def _size_hint(backbone: "FeatureBackbone", device) -> str:
    found = working_size(backbone, device)
    if found is None:
        if backbone.input_size is None:
            return ""
        return f"; it was built for {backbone.input_size[0]}x{backbone.input_size[1]} inputs and does not run there either"
    size, words = found
    if size % LEVEL_STRIDES[-1]:
        return f"; it {words}, which is not a multiple of 32"
    return f"; it {words} (e.g. --img-size {size})"


def working_size(backbone: "FeatureBackbone", device=None) -> tuple[int, str] | None:
    """A square input side the backbone runs at, tried rather than guessed, with words for the user.

    First a multiple of the size the library built the model for (windows and relative-position tables fit
    it), else exactly that size; ``None`` when the library declares no size or neither runs.
    """
    import math

    if backbone.input_size is None:
        return None
    if device is None:
        param = next(backbone.parameters(), None)
        device = param.device if param is not None else "cpu"
    side = max(backbone.input_size)
    step = math.lcm(side, LEVEL_STRIDES[-1])
    example = step * max(2, -(-512 // step))  # a multiple near the usual training sizes, never the side itself
    tries = [(side, f"runs only at {side}x{side}")]
    if step <= 2 * side:  # 299 and 32 share nothing: their common multiple (9568) is no advice
        tries.insert(0, (example, f"needs input divisible by {step}"))
    for size, words in tries:
        try:
            _forward(backbone, (size, size), device)
        except Exception:
            continue
        return size, words
    return None


def probe(preset: Preset, img_size: tuple[int, int] = (640, 640), device: str = "auto") -> ProbeResult:
    """Build ``preset``'s backbone (for ``img_size`` where it must be, see :func:`fit_to_size`) on ``device`` and
    probe it; ``device="meta"`` builds and runs shapes only."""
    import torch

    from yoloswap.backbones.sources import build_backbone

    dev = resolve_device(device)
    start = time.perf_counter()
    preset = fit_to_size(preset, img_size)
    with torch.device(dev):
        backbone = build_backbone(preset)
    result = probe_backbone(backbone, img_size, preset.name)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return _replace_seconds(result, time.perf_counter() - start)


def fit_to_size(preset: Preset, img_size: tuple[int, int]) -> Preset:
    """``preset`` as it has to be built to run on ``img_size`` inputs.

    Windowed and position-table models (timm's MaxViT, CoAtNet, Hiera, ...) are built for their pretrained size
    and run only at it or its multiples; the library builds them for another size when asked (the source's
    ``size_kwarg``). Such a model is built for the training size, so ``--backbone timm:maxvit_tiny_tf_224``
    trains at 640 with no preset file. Every other model is left exactly as given: the change is made only when
    the model as given does not run at ``img_size`` and the one built for it does (both tried on the meta device,
    which costs no compute). The returned preset is what a run records, so its checkpoints rebuild the same model.
    """
    spec = sized_spec(preset, img_size)
    if spec is None or runs_at(preset, img_size):
        return preset
    import dataclasses

    sized = dataclasses.replace(preset, model=spec)
    return sized if runs_at(sized, img_size) else preset


def runs_at(preset: Preset, img_size: tuple[int, int]) -> bool:
    """Whether ``preset``'s backbone, as the preset builds it, runs on ``img_size`` inputs (tried on meta)."""
    import torch

    from yoloswap.backbones.sources import build_backbone

    try:
        with torch.device("meta"):
            probe_backbone(build_backbone(preset), img_size, preset.name)
    except YoloswapError:
        return False
    return True


def sized_spec(preset: Preset, img_size: tuple[int, int]):
    """``preset``'s model spec built for ``img_size`` (the source's size keyword set: timm's ``img_size``);
    ``None`` when that does not apply (the source has no such keyword, or the preset sets it)."""
    import dataclasses

    from yoloswap.backbones.sources import get_source

    key = get_source(preset.model.source).size_kwarg
    if key is None or key in preset.model.kwargs:
        return None
    return dataclasses.replace(preset.model, kwargs={**preset.model.kwargs, key: list(img_size)})


def cached_probe(preset: Preset, img_size: tuple[int, int] = (640, 640)) -> ProbeResult:
    """A meta-device probe remembered on disk, keyed on the model spec and library versions.

    ``list-backbones`` probes every preset; importing torch, torchvision and timm alone takes seconds, so a
    repeat listing reads the measurements instead of importing them again. Any change to the preset's model
    or to a library version measures afresh.
    """
    from importlib import metadata

    versions = {}
    for lib in ("torch", "torchvision", "timm"):
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            versions[lib] = None
    spec = {"model": preset.to_dict()["model"], "name": preset.name, "img": list(img_size), "v": versions, "fmt": 1}
    path = remembered_path("probe-cache", spec)
    known = read_remembered(path)
    if known is not None:
        try:
            return ProbeResult.from_dict(known)
        except (ValueError, KeyError, TypeError):
            pass  # a damaged cache entry is measured again
    result = probe(preset, img_size, "meta")
    remember(path, result.to_dict())
    return result


def _result(backbone, feats, img_size, name, device, seconds) -> ProbeResult:
    h, w = img_size
    if len(feats) != 3:
        raise BackboneRefused(f"backbone '{name}' returned {len(feats)} feature levels, expected 3")
    strides = []
    for f in feats:
        fh, fw = f.shape[-2:]
        if f.ndim != 4 or h // fh != w // fw:
            raise BackboneRefused(
                f"backbone '{name}' level {len(strides)} has shape {tuple(f.shape)}, not an NCHW map of a {h}x{w} input"
            )
        strides.append(round(h / fh))
    if tuple(strides) != LEVEL_STRIDES:
        raise BackboneRefused(
            f"backbone '{name}' levels have strides {strides}, expected {list(LEVEL_STRIDES)} "
            "(its maps are not exact fractions of the input: unpadded convolutions or pooling)"
        )
    return ProbeResult(
        backbone=name,
        channels=tuple(int(f.shape[1]) for f in feats),
        strides=tuple(strides),
        shapes=tuple(tuple(int(s) for s in f.shape) for f in feats),
        img_size=(h, w),
        params=sum(p.numel() for p in backbone.parameters()),
        device=str(device),
        seconds=seconds,
        taps=backbone.taps,
    )


def _replace_seconds(result: ProbeResult, seconds: float) -> ProbeResult:
    from dataclasses import replace

    return replace(result, seconds=seconds)
