"""The detector's ``nn.Module`` parts only: blocks, CSPDarknet, the PAFPN neck, the heads (interface,
yolov5, yolov8), the Detector that joins them, and complexity counting.

Must not be here: building a detector from a preset (``assembly.py``), backbones, presets or training code; a
module here knows the shapes it is given, never where they came from.
"""
