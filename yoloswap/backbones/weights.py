"""Pretrained backbone weights: fetched from where users keep them, loaded exactly, and accounted for.

The tools yoloswap replaces fail here silently: a prefix not stripped or a layer named differently, and training
starts from random weights without a word. So loading has three steps, each with its own failure message:

1. :func:`fetch_weights` turns a weights source (``none``, ``torchvision://resnet50``, ``timm://efficientnet_b1``,
   an ``https://`` URL, a ``file://`` URL or a path) into a local file, downloading once into the library's cache.
   Offline, it says which file to put where instead of falling back to random weights.
2. The file is read only through :func:`yoloswap.safeload.load_checkpoint` (``weights_only`` unpickling or
   safetensors), so a checkpoint carrying code is refused before any of it runs.
3. :mod:`yoloswap.backbones.key_maps` finds the backbone inside the file (wrapper, prefix, library naming), and
   a :class:`LoadReport` says how many of the body's tensors were loaded. Below the required fraction, nothing is
   loaded and the run stops.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from yoloswap.errors import WeightsError, suggestion
from yoloswap.config.presets import Preset

if TYPE_CHECKING:
    from yoloswap.backbones.adapter import FeatureBackbone

_HASH_IN_NAME = re.compile(r"-([0-9a-f]{6,64})\.")  # resnet50-11ad3fa6.pth: the SHA-256 prefix, as torch.hub names
_HOW_TO_PROCEED = "pass --weights PATH to a local copy, or --weights none to train from scratch"


@dataclass
class LoadReport:
    """What a weights file did to a backbone: ``loaded`` of ``total`` body tensors (BatchNorm step counters
    aside), with the body tensors it lacked (``missing``), its own tensors that fit nowhere in the body
    (``unexpected``: a classifier, a final norm) and same-named tensors of another shape (``mismatched``).

    ``ignored`` lists the rest of the file that is deliberately not the backbone (necks, heads, momentum encoders,
    predictors, buffers the model recomputes).
    """

    loaded: int
    total: int
    missing: list[str]
    unexpected: list[str]
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]]
    source: str
    file: str = ""  # the local file read
    wrapper: str = ""  # where the state dict sat in it ("state_dict", "model", ...; "" at the top)
    prefix: str = ""
    layout: str = ""
    ignored: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "loaded": self.loaded,
            "total": self.total,
            "missing": list(self.missing),
            "unexpected": list(self.unexpected),
            "mismatched": [[key, list(ckpt), list(model)] for key, ckpt, model in self.mismatched],
            "source": self.source,
        }

    def summary_line(self) -> str:
        where = f"under '{self.prefix}'" if self.prefix else "at the top level"
        head = f"weights: loaded {self.loaded}/{self.total} backbone tensors from {self.source}"
        parts = [f"{head} ({where}, {self.layout})"]
        if self.missing:
            parts.append(f"{len(self.missing)} missing")
        if self.mismatched:
            parts.append(f"{len(self.mismatched)} of another shape")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unused ({_first(self.unexpected, 3)})")
        if self.ignored:
            parts.append(f"{len(self.ignored)} not backbone, ignored")
        return "; ".join(parts)


def load_backbone_weights(
    backbone: "FeatureBackbone",
    source: str,
    preset: Preset,
    min_fraction: float | None = None,
    progress: bool = True,
) -> LoadReport | None:
    """Load ``source`` into ``backbone.body`` and report on it; ``None`` for ``source == "none"``.

    Args:
        source: a preset's ``weights`` entry or the user's ``--weights`` (see :func:`fetch_weights`).
        min_fraction: share of the body's tensors that must load; default all of them (the classifier is not
            part of the body, so a classification checkpoint loads completely). Below it, or when nothing at all
            fits, :class:`WeightsError` is raised and the backbone is left untouched.
    """
    import torch

    from yoloswap.backbones.key_maps import match_keys, unwrap_state_dict
    from yoloswap.backbones.yolo_key_maps import read_yolo_file, yolo_backbone_tensors

    path = fetch_weights(source, progress)
    if path is None:
        return None
    raw = read_yolo_file(path)  # a torch.save file, or a YOLOv5 / Ultralytics one (pickled modules, read inert)
    tensors, wrapper = unwrap_state_dict(raw)
    tensors = yolo_backbone_tensors(tensors) or tensors  # a YOLO detector file: its CSPDarknet, under our names
    if not tensors:
        raise WeightsError(f"weights {source}: the file holds no tensors (top-level keys: {_first(list(raw), 5)})")

    if backbone.adapt_weights is not None:
        tensors = backbone.adapt_weights(tensors)
    body_state = backbone.body.state_dict()
    match = match_keys(
        {k: tuple(v.shape) for k, v in body_state.items()},
        {k: tuple(v.shape) for k, v in tensors.items()},
    )
    report = LoadReport(
        loaded=len(match.pairs),
        total=len(match.pairs) + len(match.missing) + len(match.mismatched),
        missing=match.missing,
        unexpected=match.unexpected,
        mismatched=match.mismatched,
        source=source,
        file=str(path),
        wrapper=wrapper,
        prefix=match.prefix,
        layout=match.layout,
        ignored=match.ignored,
    )
    _check_enough(report, preset, tensors, min_fraction)

    if any(t.is_meta for t in body_state.values()):
        return report  # a shape-only model (``info`` on the meta device): the report is all there is to make
    state = {key: tensors[ckpt_key].reshape(body_state[key].shape) for key, ckpt_key in match.pairs.items()}
    with torch.no_grad():
        backbone.body.load_state_dict(state, strict=False)  # copies values, casting to each tensor's dtype only
    return report


def _check_enough(report: LoadReport, preset: Preset, tensors: dict, min_fraction: float | None) -> None:
    need = 1.0 if min_fraction is None else float(min_fraction)
    library_name = f"{preset.model.source}:{preset.model.name}"
    model = preset.name if preset.name == library_name else f"{preset.name} ({library_name})"
    if report.loaded == 0:
        raise WeightsError(
            f"weights {report.source} match none of the {report.total} tensors of backbone {model}: "
            f"the file's keys look like {_first(sorted(tensors), 3)}, the backbone's like {_first(report.missing, 3)}; "
            "is it a checkpoint of another architecture?"
        )
    if report.total and report.loaded / report.total < need:
        shapes = f"; shapes differ for {_first([m[0] for m in report.mismatched], 3)}" if report.mismatched else ""
        raise WeightsError(
            f"weights {report.source}: only {report.loaded}/{report.total} tensors of backbone {model} loaded "
            f"(need {need:.0%}); missing {_first(report.missing, 5)}{shapes}. "
            f"Nothing was loaded; {_HOW_TO_PROCEED}"
        )


def _first(items: list[str], n: int) -> str:
    """``'a', 'b', 'c' (+4 more)`` for one-line messages."""
    if not items:
        return "none"
    shown = ", ".join(f"'{i}'" for i in items[:n])
    return shown + (f" (+{len(items) - n} more)" if len(items) > n else "")


# ----------------------------------------------------------------------------------------------------------
# Sources


def fetch_weights(source: str, progress: bool = True) -> Path | None:
    """A local file for ``source``, downloading it once into the cache; ``None`` for ``none``.

    Sources: ``none``; ``torchvision://MODEL[.WEIGHTS]`` (torchvision's default weights for MODEL, or the named
    enum member, e.g. ``resnet50.IMAGENET1K_V1``); ``timm://MODEL[.TAG]`` (timm's pretrained weights through the
    Hugging Face Hub cache, honouring ``HF_HUB_OFFLINE``); ``https://`` URLs (into ``torch.hub.get_dir()/checkpoints``);
    ``file://`` URLs and plain paths (``.pth``, ``.pt``, ``.pth.tar``, ``.bin``, ``.safetensors``).
    """
    spec = source.strip()
    if spec.lower() == "none":
        return None
    if spec.startswith("torchvision://"):
        return _torchvision_file(spec[len("torchvision://") :], progress)
    if spec.startswith("timm://"):
        return _timm_file(spec[len("timm://") :], progress)
    if spec.startswith(("https://", "http://")):
        return download_cached(spec, progress)
    if spec.startswith("file://"):
        path = Path(unquote(urlparse(spec).path))
    elif re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", spec):
        raise WeightsError(
            f"weights '{source}': unsupported scheme; use none, torchvision://MODEL, timm://MODEL, https://URL, "
            "file://PATH or a path"
        )
    else:
        path = Path(spec).expanduser()
    if not path.is_file():
        what = "is not a file" if path.exists() else "not found"
        raise WeightsError(
            f"weights file {path} {what} (use none, torchvision://MODEL, timm://MODEL, https://URL or a path)"
        )
    return path


def hub_cache_path(url: str) -> Path:
    """Where :func:`download_cached` keeps ``url``: ``torch.hub.get_dir()/checkpoints/<file name>``."""
    import torch

    name = Path(unquote(urlparse(url).path)).name
    if not name:
        raise WeightsError(f"weights URL {url} names no file")
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def download_cached(url: str, progress: bool = True) -> Path:
    """The cached copy of ``url``, downloaded with a progress bar if absent (SHA-256 prefix checked when the file
    name carries one, as ``torch.hub`` does). A cached file is used as is, without network access."""
    import http.client
    import urllib.error

    import torch

    dst = hub_cache_path(url)
    if dst.is_file():
        return dst
    found = _HASH_IN_NAME.search(dst.name)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(dst), hash_prefix=found.group(1) if found else None, progress=progress)
    except urllib.error.HTTPError as exc:
        raise WeightsError(
            f"cannot download weights {url}: the server answered HTTP {exc.code} {exc.reason}. "
            f"To proceed, put the file at {dst}, or {_HOW_TO_PROCEED}"
        ) from None
    except (urllib.error.URLError, ConnectionError, TimeoutError, http.client.HTTPException) as exc:
        why = getattr(exc, "reason", None) or exc
        raise WeightsError(
            f"cannot download weights {url} ({why}); this machine looks offline. To proceed, download the file "
            f"elsewhere and put it at {dst}, or {_HOW_TO_PROCEED}"
        ) from None
    except OSError as exc:
        raise WeightsError(
            f"cannot save weights {url} to {dst} ({exc.strerror or exc}); set TORCH_HOME to a writable folder, "
            f"or {_HOW_TO_PROCEED}"
        ) from None
    except RuntimeError as exc:
        if "hash" not in str(exc):
            raise
        raise WeightsError(
            f"downloaded weights {url} fail their checksum ({exc}); the download is corrupt or the file changed. "
            f"Nothing was kept at {dst}; retry, or {_HOW_TO_PROCEED}"
        ) from None
    return dst


def _torchvision_file(spec: str, progress: bool) -> Path:
    from torchvision.models import get_model_weights, list_models

    arch, _, tag = spec.partition(".")
    try:
        choices = get_model_weights(arch)
    except (ValueError, KeyError):
        raise WeightsError(
            f"weights torchvision://{spec}: torchvision has no model '{arch}'{suggestion(arch, list_models())}"
        ) from None
    if not tag:
        return download_cached(choices.DEFAULT.url, progress)
    names = [w.name for w in choices]
    if tag not in names:
        raise WeightsError(
            f"weights torchvision://{spec}: {arch} has no weights '{tag}'; choose from {', '.join(names)}"
        )
    return download_cached(choices[tag].url, progress)


def _timm_file(spec: str, progress: bool) -> Path:
    import timm
    from timm.models import get_pretrained_cfg

    arch = spec.split(".", 1)[0]
    try:
        cfg = get_pretrained_cfg(spec)
    except RuntimeError:  # a tag the architecture does not have
        tags = timm.list_pretrained(f"{arch}.*")
        raise WeightsError(
            f"weights timm://{spec}: no such pretrained tag; timm has {', '.join(tags) or 'none'} for {arch}"
        ) from None
    if cfg is None:
        hint = suggestion(arch, timm.list_models(pretrained=True))
        raise WeightsError(f"weights timm://{spec}: timm has no pretrained weights for '{arch}'{hint}")
    if cfg.hf_hub_id:
        return _hf_file(spec, cfg.hf_hub_id, cfg.hf_hub_filename)
    if cfg.url:
        return download_cached(cfg.url, progress)
    raise WeightsError(f"weights timm://{spec}: timm gives no download location for them; {_HOW_TO_PROCEED}")


def _hub_reachable(endpoint: str, timeout_s: float = 5.0) -> bool:
    """Whether a TCP connection to the hub opens (DNS failure and refusal answer at once). Behind a proxy the
    hub library knows best, so this says yes."""
    import socket

    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = urlparse(endpoint)
    try:
        socket.create_connection((url.hostname or "", url.port or 443), timeout=timeout_s).close()
    except OSError:
        return False
    return True


def _hf_file(spec: str, hub_id: str, filename: str | None) -> Path:
    """timm's weights file from the Hugging Face Hub cache (downloading it there when online)."""
    from huggingface_hub import constants, hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

    repo, _, revision = hub_id.partition("@")
    offline = constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")
    names = [filename] if filename else ["model.safetensors", "pytorch_model.bin"]
    offline_by_choice = offline
    for name in names:  # a cached file is used as is, without network access (as download_cached does)
        cached = try_to_load_from_cache(repo, name, revision=revision or None)
        if isinstance(cached, str):
            return Path(cached)
    if not offline and not _hub_reachable(constants.ENDPOINT):
        offline = True  # fail now, not after the hub library's ~30 s of retries
    for name in names:
        try:
            return Path(hf_hub_download(repo, name, revision=revision or None, local_files_only=offline))
        except LocalEntryNotFoundError:
            offline = True  # unreachable now: look for the other names in the cache only, without more retries
            continue
        except EntryNotFoundError:
            continue  # the repository has no such file: try the next name
        except RepositoryNotFoundError:
            raise WeightsError(f"weights timm://{spec}: the Hugging Face Hub has no repository {repo}") from None
        except OSError as exc:  # connection problems surface as OSError subclasses
            raise WeightsError(
                f"cannot fetch weights timm://{spec} from the Hugging Face Hub ({exc.__class__.__name__}); "
                f"{_HOW_TO_PROCEED}"
            ) from None
    mode = "offline mode (HF_HUB_OFFLINE) is on" if offline_by_choice else "the Hugging Face Hub cannot be reached"
    raise WeightsError(
        f"cannot fetch weights timm://{spec}: {mode} and {repo} is not in the cache {constants.HF_HUB_CACHE}. "
        f"To proceed, run once online to fill the cache, download {names[0]} from https://huggingface.co/{repo} and "
        f"pass --weights PATH, or --weights none to train from scratch"
    )
