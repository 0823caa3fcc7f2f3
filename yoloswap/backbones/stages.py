"""Group a backbone's parameters into [stem, stage1, stage2, stage3, stage4] the same way for every library.

``frozen_stages: N`` means "the stem and the first N stages", whatever the library calls them. Each library
tells us (or the probe measures) which module ends the stride-4, 8, 16 and 32 stages; everything before the
first of them is the stem, and each stage runs up to and including its closing module.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


def group_stages(body: nn.Module, stage_ends: Sequence[str | None]) -> tuple[tuple[str, ...], ...]:
    """Parameter names of ``body`` grouped as (stem, stage1, ..., stage4).

    ``stage_ends`` holds, for strides 4, 8, 16, 32, the name of the module that closes that stage (``None``
    when the model has no such stage). Parameters after the last stage (heads, final norms) join no group.
    """
    groups: list[list[str]] = [[] for _ in range(5)]
    ends = [(k + 1, e) for k, e in enumerate(stage_ends) if e]
    current, inside = 0, None
    for name, _ in body.named_parameters():
        hit = next((k for k, e in ends if name == e or name.startswith(e + ".")), None)
        if hit is not None:
            current, inside = hit, hit
        elif inside is not None:
            later = [k for k, _ in ends if k > inside]
            current, inside = (later[0] if later else 5), None
        if current < 5:
            groups[current].append(name)
    return tuple(tuple(g) for g in groups)
