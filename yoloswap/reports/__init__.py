"""Reports a person reads: ``compare`` (the same recipe over several backbones, the Pareto table) and
``plots`` (training and prediction pictures) and ``charts`` (evaluation and label charts). May call training (compare trains); nothing below imports this.
"""
