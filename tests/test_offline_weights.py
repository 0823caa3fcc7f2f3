"""Offline, ``--weights timm://...`` answers at once: a cached file is used without the network, and a missing
one fails before the hub library starts its ~30 s of retries."""

from __future__ import annotations

import pytest
import torch

from yoloswap.backbones import weights
from yoloswap.errors import WeightsError


def no_network(*args, **kwargs):
    if not kwargs.get("local_files_only"):
        raise AssertionError("the hub was contacted")
    from huggingface_hub.errors import LocalEntryNotFoundError

    raise LocalEntryNotFoundError("not cached")


@pytest.fixture
def online_mode_unreachable_hub(tmp_path, monkeypatch):
    """HF_HUB_OFFLINE off, the hub's name unresolvable (.invalid never resolves), and an empty hub cache."""
    import huggingface_hub
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for proxy in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "https://hub.example.invalid")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_network)
    return tmp_path / "hf"


def test_unreachable_hub_and_no_cached_file_fail_at_once_with_how_to_proceed(online_mode_unreachable_hub):
    with pytest.raises(WeightsError) as err:
        weights.fetch_weights("timm://resnet18.a1_in1k")
    message = str(err.value)
    assert message.startswith("cannot fetch weights timm://resnet18.a1_in1k: the Hugging Face Hub cannot be reached")
    assert "--weights none" in message and "\n" not in message


def test_a_cached_timm_file_is_used_without_contacting_the_hub(online_mode_unreachable_hub):
    from safetensors.torch import save_file

    repo = online_mode_unreachable_hub / "models--timm--resnet18.a1_in1k"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    save_file({"fc.bias": torch.zeros(2)}, repo / "snapshots" / commit / "model.safetensors")
    path = weights.fetch_weights("timm://resnet18.a1_in1k")
    assert path == repo / "snapshots" / commit / "model.safetensors"
