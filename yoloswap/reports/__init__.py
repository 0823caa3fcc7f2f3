"""Reports a person reads: ``compare`` (the same recipe over several backbones, the Pareto table) and
``plots`` (every matplotlib figure, one module). May call training (compare trains); nothing below imports this.
"""
