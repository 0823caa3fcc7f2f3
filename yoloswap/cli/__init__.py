"""The command line: one module per command group (``train``: train and demo-data; ``evaluate``: val and
predict; ``deploy``: export and benchmark; ``inspect``: list-backbones, probe-channels, info; ``compare``), wired in
``app.py`` from one table, with the one handler that turns errors into exit codes.

A command parses, calls the library, and renders (rich to stderr, data and JSON to stdout). Belongs here: option
declarations and rendering. Must not be here: work a library user would want without the CLI; nothing below
imports this package. Heavy imports (torch, timm) happen inside commands, so ``--help`` stays instant.
"""
