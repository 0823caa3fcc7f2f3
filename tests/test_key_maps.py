"""Checkpoint key names from other libraries, translated to the body's names: a specification by example.

The end-to-end tests (tests/test_weights.py) load whole checkpoints; these pin down single names as each library
publishes them, and how the loader decides which part of a file is the backbone.
"""

from __future__ import annotations

import pytest
import torch

from yoloswap.backbones.key_maps import (
    candidate_prefixes,
    match_keys,
    mmcls_convnext_to_timm,
    mmcls_mobilenetv3_to_torchvision,
    official_convnext_to_timm,
    official_swin_to_timm,
    shapes_fit,
    unwrap_state_dict,
)


@pytest.mark.parametrize(
    "official, timm",
    [
        ("downsample_layers.0.0.weight", "stem.0.weight"),
        ("downsample_layers.0.1.bias", "stem.1.bias"),
        ("downsample_layers.2.1.weight", "stages.2.downsample.1.weight"),
        ("stages.1.2.dwconv.weight", "stages.1.blocks.2.conv_dw.weight"),
        ("stages.1.2.pwconv1.bias", "stages.1.blocks.2.mlp.fc1.bias"),
        ("stages.3.0.pwconv2.weight", "stages.3.blocks.0.mlp.fc2.weight"),
        ("stages.0.0.gamma", "stages.0.blocks.0.gamma"),
        ("stages.0.0.norm.weight", "stages.0.blocks.0.norm.weight"),
        ("norm.weight", "head.norm.weight"),
        ("head.bias", "head.fc.bias"),
    ],
)
def test_official_convnext_names(official, timm):
    assert official_convnext_to_timm([official]) == {official: timm}


@pytest.mark.parametrize(
    "mmcls, timm",
    [
        ("downsample_layers.0.0.weight", "stem.0.weight"),
        ("stages.2.8.depthwise_conv.weight", "stages.2.blocks.8.conv_dw.weight"),
        ("stages.2.8.pointwise_conv1.weight", "stages.2.blocks.8.mlp.fc1.weight"),
        ("stages.2.8.pointwise_conv2.bias", "stages.2.blocks.8.mlp.fc2.bias"),
        ("stages.2.8.gamma", "stages.2.blocks.8.gamma"),
        ("norm3.weight", "head.norm.weight"),
    ],
)
def test_mmcls_convnext_names(mmcls, timm):
    assert mmcls_convnext_to_timm([mmcls]) == {mmcls: timm}


def test_official_swin_names_move_patch_merging_to_the_next_stage_and_drop_derived_buffers():
    keys = [
        "patch_embed.proj.weight",
        "layers.0.blocks.1.attn.relative_position_bias_table",
        "layers.0.blocks.1.attn.relative_position_index",
        "layers.0.blocks.1.attn_mask",
        "layers.0.downsample.reduction.weight",
        "layers.2.downsample.norm.bias",
        "head.weight",
    ]
    assert official_swin_to_timm(keys) == {
        "patch_embed.proj.weight": "patch_embed.proj.weight",
        "layers.0.blocks.1.attn.relative_position_bias_table": "layers.0.blocks.1.attn.relative_position_bias_table",
        "layers.0.blocks.1.attn.relative_position_index": None,
        "layers.0.blocks.1.attn_mask": None,
        "layers.0.downsample.reduction.weight": "layers.1.downsample.reduction.weight",
        "layers.2.downsample.norm.bias": "layers.3.downsample.norm.bias",
        "head.weight": "head.fc.weight",
    }


def test_mmcls_mobilenetv3_names_count_block_parts_from_what_the_file_has():
    keys = [
        "layer0.conv.weight",
        "layer0.bn.running_mean",
        # layer1 does not expand: depthwise conv is torchvision's block.0
        "layer1.depthwise_conv.conv.weight",
        "layer1.se.conv1.conv.weight",
        "layer1.se.conv2.conv.bias",
        "layer1.linear_conv.bn.running_var",
        # layer2 expands and has no SE
        "layer2.expand_conv.conv.weight",
        "layer2.depthwise_conv.bn.weight",
        "layer2.linear_conv.conv.weight",
        "layer12.bn.bias",
    ]
    assert mmcls_mobilenetv3_to_torchvision(keys) == {
        "layer0.conv.weight": "features.0.0.weight",
        "layer0.bn.running_mean": "features.0.1.running_mean",
        "layer1.depthwise_conv.conv.weight": "features.1.block.0.0.weight",
        "layer1.se.conv1.conv.weight": "features.1.block.1.fc1.weight",
        "layer1.se.conv2.conv.bias": "features.1.block.1.fc2.bias",
        "layer1.linear_conv.bn.running_var": "features.1.block.2.1.running_var",
        "layer2.expand_conv.conv.weight": "features.2.block.0.0.weight",
        "layer2.depthwise_conv.bn.weight": "features.2.block.1.1.weight",
        "layer2.linear_conv.conv.weight": "features.2.block.2.0.weight",
        "layer12.bn.bias": "features.12.1.bias",
    }


def test_unwrap_follows_wrappers_and_drops_non_tensors():
    w = torch.ones(2)
    assert unwrap_state_dict({"a.weight": w, "epoch": 3}) == ({"a.weight": w}, "")
    assert unwrap_state_dict({"meta": {"epoch": 3}, "state_dict": {"a.weight": w}}) == ({"a.weight": w}, "state_dict")
    assert unwrap_state_dict({"epoch": 1, "model": {"a.weight": w}, "ema": {"a.weight": w * 2}})[1] == "model"
    assert unwrap_state_dict({"state_dict": {"module": {"a.weight": w}}}) == ({"a.weight": w}, "state_dict.module")
    assert unwrap_state_dict({"ema": {"a.weight": w}})[1] == "ema"
    assert unwrap_state_dict({"epoch": 1, "arch": "resnet50"}) == ({}, "")


def test_twin_encoders_never_load_the_momentum_or_key_copy():
    prefixes = candidate_prefixes(
        ["module.base_encoder.conv1.weight", "module.momentum_encoder.conv1.weight", "module.predictor.0.weight",
         "momentum_encoder.module.0.conv1.weight", "module.encoder_q.conv1.weight", "module.encoder_k.conv1.weight"]
    )
    assert "module.base_encoder." in prefixes and "module.encoder_q." in prefixes
    assert not any("momentum" in p or "predictor" in p or "encoder_k" in p for p in prefixes)

    body = {"conv1.weight": (8, 3, 7, 7), "bn1.weight": (8,)}
    ckpt = {f"module.{enc}.{k}": s for enc in ("encoder_k", "encoder_q") for k, s in body.items()}
    match = match_keys(body, ckpt)
    assert match.prefix == "module.encoder_q." and set(match.pairs) == set(body)
    assert sorted(match.ignored) == ["module.encoder_k.bn1.weight", "module.encoder_k.conv1.weight"]


def test_match_sorts_every_tensor_into_loaded_mismatched_missing_unexpected_or_ignored():
    body = {"conv1.weight": (8, 3, 7, 7), "bn1.weight": (8,), "bn1.num_batches_tracked": (), "layer1.w": (4,)}
    ckpt = {
        "backbone.conv1.weight": (8, 3, 3, 3),  # same name, other shape
        "backbone.bn1.weight": (8,),
        "backbone.bn1.num_batches_tracked": (),  # step counters are neither loaded nor reported
        "backbone.fc.weight": (10, 8),  # a classifier: no place in the body
        "neck.proj.weight": (4, 8),  # another part of the file
    }
    match = match_keys(body, ckpt)
    assert match.prefix == "backbone."
    assert match.pairs == {"bn1.weight": "backbone.bn1.weight"}
    assert match.mismatched == [("conv1.weight", (8, 3, 3, 3), (8, 3, 7, 7))]
    assert match.missing == ["layer1.w"]
    assert match.unexpected == ["backbone.fc.weight"]
    assert match.ignored == ["neck.proj.weight"]


def test_linear_and_1x1_conv_weights_fit_each_other_but_transposes_do_not():
    assert shapes_fit((96, 384), (96, 384, 1, 1))
    assert shapes_fit((96, 384, 1, 1), (96, 384))
    assert not shapes_fit((384, 96), (96, 384))
    assert not shapes_fit((96,), (96, 1, 3, 3))


def test_a_file_with_no_backbone_matches_nothing():
    match = match_keys({"conv1.weight": (8, 3, 7, 7)}, {"stem.0.weight": (96, 3, 4, 4)})
    assert match.pairs == {} and match.missing == ["conv1.weight"]
