"""Backbones: the sources table (timm | torchvision | CSPDarknet) with one module per source, the adapter that
turns any of them into three NCHW maps, the probe (the one source of channels and strides), freezing, and weights
with their key maps.

Belongs here: whatever builds, measures or loads a backbone. Must not be here: necks, heads or detectors
(``assembly.py`` joins the parts), training, evaluation or CLI code; nothing here imports them.
"""

LEVEL_STRIDES = (8, 16, 32)  # the backbone contract: one NCHW map per stride, in this order
