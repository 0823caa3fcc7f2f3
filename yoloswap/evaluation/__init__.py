"""Evaluation: the COCO evaluator (``coco``), one loop that scores any runtime's ``infer`` over a split
(``loop``), and the ``val`` workflow every entry point uses (``workflow``: which data, which size, which split).

Must not import ``training/`` or ``cli/``: training calls evaluation, never the reverse.
"""
