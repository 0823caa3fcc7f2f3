"""Training: the loop (``loop``: fit and one epoch), its set-up (``setup``: data, model, optimizer, each a
function), the run's state (``state``: save, restore, resume in one place), the hooks around each epoch (``hooks``:
CSV row, checkpoints, plot, log line), the run folder (``rundir``: naming and the writer's lock) and the recipe's
parts (optim, schedule, ema, precision, distributed, signals, autoanchor).

Must not be here: evaluation or deployment code (``evaluation/``, ``deploy/`` are called, never copied), CLI
rendering. Hooks import the run's state types, never the loop.
"""
