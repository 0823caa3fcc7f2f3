"""Data: ``formats/`` (one module per layout behind one loader signature, and their table), images (safe
decoding, EXIF), transforms (letterbox, mosaic, HSV, affine, and the letterbox's inverse), the dataset and its
collate, and the built-in synthetic set.

Must not import models, backbones, assembly, training, evaluation or the CLI: data knows pixels and boxes only.
"""
