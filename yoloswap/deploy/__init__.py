"""Deployment: export formats (``export``), runtimes that run a ``.pt``, ``.onnx`` or ``.torchscript``
behind one ``infer`` (``runtimes``), predict and its sources (``predict``), and latency benchmarks (``benchmark``).

Must not import ``training/`` or ``cli/``.
"""
