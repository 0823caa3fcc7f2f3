"""``frozen_stages`` and ``norm_eval``, the seed configs' backbone controls, the same way for every library.

Freezing sets ``requires_grad=False`` on the stem and the first N stages (as grouped by
:mod:`yoloswap.backbones.stages`), so the optimizer never holds them and DistributedDataParallel never waits for
their gradients: no "Expected to have finished reduction" errors. Apply it *before* building the optimizer and
before wrapping the model in DDP, which records the trainable parameters when it is created.

Frozen modules and, with ``norm_eval``, every BatchNorm of the backbone stay in eval mode across ``model.train()``
(see :meth:`FeatureBackbone.train`): their running statistics do not move and their dropout/drop-path is off.
"""

from __future__ import annotations

from torch import nn

from yoloswap.backbones.adapter import FeatureBackbone
from yoloswap.config.options import BN_MODES
from yoloswap.errors import ConfigError


def apply_freezing(backbone: FeatureBackbone, frozen_stages: int, norm_eval: bool) -> None:
    """Freeze the stem and the first ``frozen_stages`` stages (``0`` or ``-1``: nothing) and set ``norm_eval``.

    Parameters outside the frozen stages are left as they are (this never unfreezes anything).
    """
    if not -1 <= frozen_stages <= len(backbone.stages) - 1:
        raise ConfigError(f"frozen_stages must be in [-1, {len(backbone.stages) - 1}], got {frozen_stages}")
    frozen: set[str] = set()
    if frozen_stages > 0:
        for group in backbone.stages[: frozen_stages + 1]:  # stem + stages 1..N
            frozen.update(group)
    for name, param in backbone.body.named_parameters():
        if name in frozen:
            param.requires_grad_(False)
    backbone.frozen_modules = frozen_module_names(backbone.body, frozen)
    backbone.norm_eval = bool(norm_eval)
    backbone.train(backbone.training)  # apply the modes now, not only at the next model.train()


def frozen_module_names(body: nn.Module, frozen: set[str]) -> tuple[str, ...]:
    """The outermost modules of ``body`` whose parameters are all in ``frozen`` (``""`` is ``body`` itself).

    Names rather than module objects, so the list stays valid after ``deepcopy`` (EMA) and after
    ``convert_sync_batchnorm`` swaps BatchNorm modules for SyncBatchNorm ones.
    """
    if not frozen:
        return ()
    chosen: list[str] = []
    for name, module in body.named_modules():
        if any(name.startswith(c + ".") or c == "" for c in chosen):
            continue  # inside a module already chosen
        params = [p for p, _ in module.named_parameters(prefix=name)]
        if params and all(p in frozen for p in params):
            chosen.append(name)
    return tuple(chosen)




def apply_bn_mode(backbone: FeatureBackbone, mode: str) -> None:
    """The backbone's BatchNorm mode (``--bn``), applied after :func:`apply_freezing`.

    - ``frozen``: torchvision detection's FrozenBatchNorm2d: statistics *and* affine parameters fixed. The modules
      stay ``BatchNorm2d`` (kept in eval mode, ``weight``/``bias`` with ``requires_grad=False``), which computes
      exactly what ``torchvision.ops.misc.FrozenBatchNorm2d`` computes but keeps BatchNorm's state-dict keys, so
      the run's checkpoints load into ``val``, ``predict`` and ``export`` unchanged.
    - ``eval``: statistics fixed, affine parameters trained (mmdet's ``norm_eval``).
    - ``train``: statistics and affine parameters trained.
    - ``sync``: as ``train``; under torchrun on CUDA every BatchNorm becomes SyncBatchNorm (training/distributed.py
      does that for any trainable BatchNorm).
    """
    if mode not in BN_MODES:
        raise ConfigError(f"--bn must be one of {', '.join(BN_MODES)}, got {mode!r}")
    backbone.norm_eval = mode in ("frozen", "eval")
    if mode == "frozen":
        for module in backbone.body.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                for param in module.parameters(recurse=False):
                    param.requires_grad_(False)
    backbone.train(backbone.training)
