"""The one backbone contract: images in, a list of three NCHW feature maps at strides 8, 16, 32 out.

Libraries disagree on the rest: timm's Swin works in NHWC, torchvision returns dicts, some models return more
levels than asked. :class:`FeatureBackbone` hides all of it so the neck can trust what it receives.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from yoloswap.backbones import LEVEL_STRIDES


class FeatureBackbone(nn.Module):
    """Wraps a library model so that ``forward(x)`` returns ``[P3, P4, P5]`` as NCHW tensors.

    Args:
        body: the (truncated) library model; its ``state_dict`` keeps the library's own key names, so
            pretrained checkpoints of that library load into it directly.
        extract: ``extract(body, x)`` returns the three level tensors in stride order (any layout).
        taps: human-readable names of the tapped layers (for reports).
        stages: module-name prefixes of the body, grouped as [stem, stage1, stage2, stage3, stage4], used to
            freeze "the stem and the first N stages" uniformly across libraries.
        source, model_name: where the body came from (``timm``/``torchvision``/``yoloswap``).
    """

    def __init__(
        self,
        body: nn.Module,
        extract: Callable[[nn.Module, torch.Tensor], Sequence[torch.Tensor]],
        taps: Sequence[str],
        stages: Sequence[Sequence[str]],
        source: str,
        model_name: str,
    ) -> None:
        super().__init__()
        self.body = body
        self._extract = extract
        self.taps = tuple(taps)
        self.stages = tuple(tuple(s) for s in stages)
        self.source = source
        self.model_name = model_name
        self.strides = LEVEL_STRIDES

    # Set by yoloswap.backbones.freeze.apply_freezing; class defaults mean "nothing frozen".
    frozen_modules: tuple[str, ...] = ()  # names inside ``body`` kept in eval mode (frozen stages)
    norm_eval: bool = False  # keep every BatchNorm of the body in eval mode (running statistics frozen)
    # Set by the sources when the library declares them; the probe uses them to explain a refusal.
    input_size: tuple[int, int] | None = None  # (H, W) the library builds the model for (its pretrained input)
    declared_channels: tuple[int, int, int] | None = None  # what the library says the three taps carry
    # Set by a source whose model was built for a size other than its pretrained one: turns a checkpoint's
    # size-dependent tensors (relative-position tables) into this build's shapes before weights are matched.
    adapt_weights: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None
    # Set by backbones/overrides.py: one line per act/norm override that could not apply to this body.
    override_notes: tuple[str, ...] = ()

    def train(self, mode: bool = True) -> "FeatureBackbone":
        """Like ``nn.Module.train``, but frozen stages (and, with ``norm_eval``, all BatchNorms) stay in eval mode,
        so ``model.train()`` at the start of each epoch cannot unfreeze their statistics."""
        super().train(mode)
        if mode:
            for name in self.frozen_modules:
                self.body.get_submodule(name).eval()
            if self.norm_eval:
                for module in self.body.modules():
                    if isinstance(module, nn.modules.batchnorm._BatchNorm):
                        module.eval()
        return self

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h, w = x.shape[-2:]
        feats = self._extract(self.body, x)
        return [to_nchw(f, h, w, s) for f, s in zip(feats, self.strides, strict=True)]


def missing_levels_hint(have: Sequence[int]) -> str:
    """Why a model's strides ``have`` cannot feed the neck, in the words a user needs: which level is missing."""
    if len(set(have)) == 1:
        return " (one stride only: a plain ViT-like model keeps one resolution throughout; pick a hierarchical one)"
    missing = [s for s in LEVEL_STRIDES if s not in have]
    if not have:
        return " (no feature map is an exact fraction of the input: unpadded convolutions or pooling)"
    return f" (no stride-{'/'.join(map(str, missing))} level)"


def to_nchw(feat: torch.Tensor, h: int, w: int, stride: int) -> torch.Tensor:
    """Return ``feat`` as NCHW, permuting it when its spatial sides sit in dims 1–2 (NHWC)."""
    if feat.ndim != 4:
        raise ValueError(f"backbone level at stride {stride} returned a {feat.ndim}-d tensor, expected 4-d")
    gh, gw = -(-h // stride), -(-w // stride)  # ceil: padded models round up
    fh, fw = h // stride, w // stride
    if tuple(feat.shape[2:]) in ((gh, gw), (fh, fw)):
        return feat
    if tuple(feat.shape[1:3]) in ((gh, gw), (fh, fw)):
        return feat.permute(0, 3, 1, 2).contiguous()
    return feat  # unknown layout: leave it; the probe reports what it measured
