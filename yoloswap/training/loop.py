"""The training loop: data → augment → loss → optimizer/EMA/AMP → evaluate → checkpoint, one epoch at a time.

Read top to bottom: ``train`` gets a :class:`~yoloswap.training.state.Run` from ``setup.build_run`` (model, data,
optimizer, schedule), then loops ``train_one_epoch`` / ``evaluate`` and hands each finished epoch to the hooks (CSV
row, checkpoint, log line, plot: training/hooks.py). Saving, restoring and resuming live in training/state.py. Every
checkpoint is self-describing and written atomically, so a run killed at any moment resumes from its last
completed epoch.

The loop never waits for the device inside a step: loss items and the finiteness check stay on the device and are
read back a few times a second (:data:`READOUT_S`), which is also when the progress display is refreshed.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from yoloswap.device import resolve_device
from yoloswap.errors import TrainingError
from yoloswap.evaluation.loop import evaluate
from yoloswap.training.precision import autocast_for
from yoloswap.run_folders import new_run_dir
from yoloswap.training import cpu_memory, distributed, runlock, signals
from yoloswap.training.ema import unwrap
from yoloswap.training.loggers import close_loggers, logger_names, open_loggers
from yoloswap.training.hooks import EpochCallback, EpochEnd, Progress, default_callbacks, metric_columns, trim_metrics
from yoloswap.training.rundir import check_run_dir, claim_run_dir
from yoloswap.training.messages import epochs_text, log_plan, log_setup, log_time_left, summary
from yoloswap.training.setup import build_run
from yoloswap.data.check import label_arrays
from yoloswap.reports.charts import plot_labels
from yoloswap.training.state import DEFAULT_LOSS_NAMES, Run, fitness, resumed_options, save_run, write_config
from yoloswap.config.options import MIN_LEARNING_EPOCHS, TrainOptions

METRIC_COLUMNS = metric_columns(DEFAULT_LOSS_NAMES)  # an old run's metrics.csv
READOUT_S = 0.25  # read the loss back from the device (one host sync) and refresh the progress this often
MOSAIC_MAX_CLOSED = 0.25  # --close-mosaic turns mosaic off for at most this fraction of the epochs


def train(options: TrainOptions, out: Path | None = None, exist_ok: bool = False, resume: Path | None = None,
          console=None, progress: Progress | None = None, callbacks: list[EpochCallback] | None = None,
          extend_to: int | None = None) -> dict:
    """Run (or resume) training; returns the final metrics.

    ``console`` (a rich Console) receives the log lines; ``progress`` draws the bars (default: none);
    ``callbacks`` run after every epoch on the main process (default: CSV row, checkpoints, log line, plot);
    ``extend_to`` (with ``resume``) continues the run, finished or not, up to that many epochs.
    """
    from rich.console import Console

    console = console or Console(stderr=True)
    dist = distributed.from_env()
    log = console.print if dist.main else (lambda *a, **k: None)
    progress = progress if progress is not None and dist.main else Progress()
    callbacks = default_callbacks(log) if callbacks is None else callbacks
    try:
        with signals.stop_on_sigterm():
            return _train(options, out, exist_ok, resume, console, log, dist, progress, callbacks, extend_to)
    finally:
        runlock.release()
        distributed.cleanup(dist)
        cpu_memory.give_back_memory()  # build_run kept freed memory for the steps; the caller may live on


def _train(options: TrainOptions, out: Path | None, exist_ok: bool, resume: Path | None, console, log,
           dist: distributed.Dist, progress: Progress, callbacks: list[EpochCallback],
           extend_to: int | None = None) -> dict:
    distributed.setup(dist, resolve_device(options.device))  # join the group before ranks exchange anything
    resume_ckpt = None
    if resume is not None:
        out, resume_ckpt, options = resumed_options(Path(resume), options, extend_to, log)
    elif dist.main:
        out = check_run_dir(out or new_run_dir(), exist_ok)
    if dist.main and out.is_dir():  # a folder that exists (resume, --exist-ok): refuse a second writer at once
        runlock.hold(out)  # one writer per run folder; only its holder may touch what is in it
        if resume_ckpt is not None:
            trim_metrics(out / "metrics.csv", int(resume_ckpt["epoch"]) + 1)  # a kill between row and checkpoint
    out = distributed.broadcast(dist, out)
    # Everything is validated and built before the run folder exists: a start that fails leaves nothing behind.
    logger_names(options.logger)  # a missing package stops here, before anything is built
    run, (train_loader, val_loader) = build_run(options, out, log, resume_ckpt, dist)
    options = run.options
    log(distributed.describe(dist, run.device, options.batch_size))
    if dist.main:
        claim_run_dir(out, exist_ok=True)
        runlock.hold(out)
        if resume_ckpt is None:  # a new run in a reused folder (--exist-ok) overwrites it: a fresh log
            (out / "metrics.csv").unlink(missing_ok=True)
        write_config(run)
        try:  # the labels as training reads them; a picture is never a reason to stop a run
            plot_labels(*label_arrays(train_loader.dataset.samples), run.names, out / "labels.png")
        except Exception as e:  # noqa: BLE001
            log(f"[yellow]warning:[/] labels.png not written ({type(e).__name__}: {e})")
    log_setup(run, log, len(train_loader.dataset), len(val_loader.dataset))
    loggers = open_loggers(run, resume_ckpt is not None, log) if dist.main else []  # only rank 0 logs
    try:
        final = _fit(run, train_loader, val_loader, log, progress, [*callbacks, *loggers])
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM at the next safe point
        if dist.main:
            _say_how_to_resume(run, log, exc)
        raise
    finally:
        close_loggers(loggers, run)
    if dist.main:
        summary(run, console, final)
    return run.last_metrics


def _say_how_to_resume(run: Run, log, exc: KeyboardInterrupt) -> None:
    import shlex

    why = str(exc) if isinstance(exc, signals.StopRequested) else "interrupted"
    last = run.out / "weights" / "last.pt"
    if last.is_file():
        log(f"{why}: {last} holds the last finished epoch.")
        log(f"Resume with: yoloswap train --resume {shlex.quote(str(run.out))}", soft_wrap=True)  # one line to copy
    else:
        log(f"{why} before the first epoch finished; nothing to resume")


def _fit(run: Run, train_loader, val_loader, log, progress: Progress, callbacks: list[EpochCallback]):
    """The epochs: train, refit to the --time budget, validate, hand the epoch to the callbacks. Returns the
    final validation (an EvalOutput; None when this process did not validate)."""
    options, dist = run.options, run.dist
    loss_fn = unwrap(run.model).head.make_loss(options.img_size)  # each head owns its loss (and its item names)
    run.loss_names = tuple(loss_fn.names)
    epochs = options.epochs
    budget_start = time.perf_counter()
    epoch = run.start_epoch
    log_plan(run, log)
    result = None
    while epoch < epochs:
        train_loader.dataset.mosaic_enabled = mosaic_on(epoch, epochs, options.close_mosaic)
        _reseed_epoch(train_loader, options.seed + dist.rank, epoch)  # a resumed epoch replays exactly
        if dist.enabled:
            train_loader.sampler.set_epoch(epoch)
        start = time.perf_counter()
        losses, img_per_s = train_one_epoch(run, train_loader, loss_fn, epoch, progress)
        row = {"epoch": epoch + 1, "train/img_per_s": img_per_s}
        row.update({f"train/{n}_loss": v for n, v in zip(run.loss_names, losses)})
        row.update(_lr_columns(run.optimizer))
        if options.time is not None and epoch + 1 < run.max_epochs:
            # refitted before validating, so an epoch the budget makes the last one is validated (--val-interval)
            epochs = _refit_to_time(run, epochs, epoch + 1, time.perf_counter() - budget_start, log)
            options = run.options
        final = epoch == epochs - 1
        improved = False
        if dist.main and ((epoch + 1) % options.val_interval == 0 or final):
            result = _validate(run, val_loader, loss_fn, progress, epoch)
            metrics = result.metrics
            row.update({f"val/{n}_loss": metrics.get(f"val_{n}_loss") for n in run.loss_names})
            row.update({"metrics/precision": metrics.get("precision"), "metrics/recall": metrics.get("recall"),
                        "metrics/mAP50": metrics["map50"], "metrics/mAP50-95": metrics["map"],
                        "time/val_ms_per_img": metrics.get("val_ms_per_img")})
            run.last_metrics = metrics
            improved = fitness(metrics) > run.best_fitness
            if improved:
                run.best_fitness, run.best_epoch = fitness(metrics), epoch
        row["time/epoch_s"] = time.perf_counter() - start
        if dist.main:
            event = EpochEnd(run, epoch, epochs, row, improved, float(sum(losses)))
            for callback in callbacks:
                callback(event)
        if epoch - run.start_epoch in (0, 1) and epochs > epoch + 1:
            # the first epoch pays one-time costs (workers starting, kernels being chosen); the second is the pace
            log_time_left(log, row["time/epoch_s"] if epoch > run.start_epoch else time.perf_counter() - budget_start,
                          epochs - epoch - 1, first=epoch == run.start_epoch)
        epoch += 1
        if epoch < epochs and distributed.broadcast(dist, _out_of_patience(run, epoch - 1, log) if dist.main else False):
            break
    if result is not None:
        _save_evaluation_plots(run, result, log)
    return result


def _out_of_patience(run: Run, epoch: int, log) -> bool:
    """After 0-based ``epoch``: has the fitness not improved for ``--patience`` epochs? Then the run is marked
    stopped early (config.yaml and last.pt say so, and where its best epoch was) and the loop ends."""
    patience = run.options.patience
    if not patience or run.best_epoch < 0 or epoch - run.best_epoch < patience:
        return False
    run.stopped_early = {"epoch": epoch + 1, "best_epoch": run.best_epoch + 1, "patience": patience}
    log(f"stopping early: no better fitness for {patience} epochs (--patience {patience}); the best epoch was "
        f"{run.best_epoch + 1}, in {run.out / 'weights' / 'best.pt'}")
    write_config(run)
    save_run(run, epoch, best=False)  # last.pt records the stop, so --resume says the run is finished
    return True


def _save_evaluation_plots(run: Run, result, log) -> None:
    """confusion_matrix.png / .csv, PR_curve.png and F1_curve.png of the final validation into the run folder."""
    try:
        from yoloswap.evaluation.metrics import CONFUSION_CONF, CONFUSION_IOU, confusion_matrix
        from yoloswap.reports.charts import save_evaluation_plots

        acc = result.accumulator
        matrix = confusion_matrix(acc.gt_dict(), acc.results(), CONFUSION_CONF, CONFUSION_IOU)
        save_evaluation_plots(acc.details, matrix, run.out, CONFUSION_CONF, CONFUSION_IOU)
    except Exception as exc:  # a plot must never end a run
        log(f"[yellow]warning:[/] could not draw the evaluation plots ({exc})")


def _refit_to_time(run: Run, epochs: int, done: int, spent_s: float, log) -> int:
    """The run's total epochs refitted to ``--time`` after ``done`` epochs (``spent_s`` seconds into the budget);
    the lr schedule, the options and config.yaml follow a change."""
    options, dist = run.options, run.dist
    fitted = distributed.broadcast(dist, fit_epochs_to_time(
        options.time * 60, spent_s, done - run.start_epoch, done, run.max_epochs))
    if fitted != epochs:
        log(f"--time {options.time:g} min: {epochs_text(fitted)} {'fits' if fitted == 1 else 'fit'} the budget "
            f"(was {epochs})" + (f"; too few to learn to detect: give more --time, or drop it and set --epochs"
                                 if fitted < min(MIN_LEARNING_EPOCHS, run.max_epochs) else ""))
        run.schedule = dataclasses.replace(run.schedule, epochs=fitted)
        run.options = dataclasses.replace(options, epochs=fitted)
        if dist.main:
            write_config(run)  # config.yaml tells the epochs the run will really train
    return fitted


def mosaic_on(epoch: int, epochs: int, close_mosaic: int) -> bool:
    """Mosaic for all but the last ``close_mosaic`` epochs, which are never more than a quarter of the run.

    The last epochs without mosaic let the model settle on whole, unstitched images (YOLOv5/Ultralytics close the
    last 10 of 100+); in a short run mosaic's variety matters more, so a 4-epoch run keeps it for 3 epochs and a
    2-epoch run for both.
    """
    closed = min(close_mosaic, int(epochs * MOSAIC_MAX_CLOSED))
    return epoch < epochs - closed


def fit_epochs_to_time(budget_s: float, spent_s: float, epochs_done_here: int, epoch: int, epochs: int) -> int:
    """Total epochs that fit ``budget_s`` at the pace so far: more or fewer than planned, never more than
    ``epochs`` (the ``--epochs`` asked for); ``epoch`` (the epochs done) = stop now.

    Called after every epoch, so the estimate follows the real pace; the lr schedule is refitted to each new total,
    so the decay still ends where training does.
    """
    per_epoch = spent_s / max(epochs_done_here, 1)
    remaining = int(max(budget_s - spent_s, 0.0) // max(per_epoch, 1e-9))
    return min(epochs, epoch + remaining)


def train_one_epoch(run: Run, loader, loss_fn, epoch: int, progress: Progress | None = None
                    ) -> tuple[list[float], float]:
    """One pass over the training data; returns the mean loss items and images per second.

    Nothing in a step waits for the device: the loss items are summed and the first non-finite loss is noted on
    the device, and read back (one sync) every :data:`READOUT_S` seconds and after the last batch. A non-finite
    loss therefore stops the run at that read-out, a fraction of a second after it happened, naming the batch
    where it first appeared.
    """
    model, optimizer, device = run.model, run.optimizer, run.device
    progress = progress or Progress()
    model.train()
    nb = len(loader)
    progress.start_epoch(epoch, run.options.epochs, nb)
    sums = None  # (N,) running sum of the loss items, on the device
    bad_batch = torch.full((), -1, dtype=torch.long, device=device)  # first batch with a non-finite loss
    bad_value = torch.zeros((), device=device)
    means: list[float] = []
    seen, start = 0, time.perf_counter()
    shown = start
    last_step = epoch * nb - 1 if epoch else -1
    optimizer.zero_grad(set_to_none=True)
    try:
        for i, (images, targets, _) in enumerate(loader):
            signals.check()  # SIGTERM: stop here, between steps
            ni = i + nb * epoch
            run.schedule.apply(optimizer, ni, epoch)
            x = images.to(device, non_blocking=True).float() / 255  # (B, 3, S, S) in [0, 1]
            x = x.contiguous(memory_format=torch.channels_last)
            with autocast_for(device, run.amp_dtype):
                outputs = model(x)
            loss, items = loss_fn([o.float() for o in outputs], targets.to(device, non_blocking=True))
            items = items.detach().float()  # (N,) named by loss_fn.names (the head interface's HeadLoss)
            first_bad = (bad_batch < 0) & ~torch.isfinite(loss.detach())
            bad_batch = torch.where(first_bad, i, bad_batch)
            bad_value = torch.where(first_bad, loss.detach().float(), bad_value)
            sums = items if sums is None else sums + items
            run.scaler.scale(loss * run.dist.world_size).backward()  # DDP averages gradients over ranks
            if ni - last_step >= run.schedule.accumulate_at(ni) or i == nb - 1:
                _optimizer_step(run)
                last_step = ni
            seen += len(images)
            now = time.perf_counter()
            if now - shown >= READOUT_S or i == nb - 1:
                shown = now
                means = _read_out(run, sums, i + 1, bad_batch, bad_value, epoch)
                stats = dict(zip(run.loss_names, means))
                stats.update(lr=optimizer.param_groups[0]["lr"], img_per_s=seen / max(now - start, 1e-9))
                if device.type == "cuda":
                    stats["mem_gb"] = torch.cuda.memory_reserved(device) / 2**30
                progress.update(i + 1, stats)
    finally:
        progress.end_epoch()
    return means, seen / max(time.perf_counter() - start, 1e-9)


def _read_out(run: Run, sums: torch.Tensor, batches: int, bad_batch: torch.Tensor, bad_value: torch.Tensor,
              epoch: int) -> list[float]:
    """The one host sync of a read-out: mean loss items so far, and the stop on a non-finite loss."""
    values = torch.cat([sums / batches, bad_batch.reshape(1).float(), bad_value.reshape(1)]).tolist()
    bad = int(values[-2])
    if bad >= 0:
        raise TrainingError(
            f"loss became {values[-1]} at epoch {epoch + 1}, batch {bad + 1}; stopping. The last good "
            f"checkpoint is {run.out / 'weights' / 'last.pt'}. Try a lower --lr, --no-amp, or check the labels"
        )
    return values[:-2]


def _optimizer_step(run: Run) -> None:
    run.scaler.unscale_(run.optimizer)
    params = [p for g in run.optimizer.param_groups for p in g["params"]]
    torch.nn.utils.clip_grad_norm_(params, max_norm=10.0)  # no read-back: the norm stays on the device
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.optimizer.zero_grad(set_to_none=True)
    if run.ema is not None:
        run.ema.update(run.model)


def _validate(run: Run, loader, loss_fn, progress: Progress, epoch: int):
    """The EvalOutput of the EMA model: COCO metrics with the time per validation image (``val_ms_per_img``);
    refreshes ``val_predictions.png`` (a few images with predicted boxes).

    It runs in the training precision, as Ultralytics validates in half precision while training: on a bf16 CPU
    this halves a ConvNeXt-T validation (5.8 -> 2.5 s for the built-in set's 80 images, one core) and moved
    mAP@.5 by under 0.002 (bench/RESULTS.md §13). ``yoloswap val`` stays in float32.
    """
    model = run.ema.module if run.ema is not None else unwrap(run.model)
    progress.start_val(len(loader))
    start = time.perf_counter()
    try:
        with autocast_for(run.device, run.amp_dtype):
            result = evaluate(model, loader, run.names, run.category_ids, run.device, loss_fn=loss_fn,
                              previews=8, on_batch=lambda: (signals.check(), progress.val_batch()))
    finally:
        progress.end_val()
    metrics = dict(result.metrics)
    metrics["val_ms_per_img"] = 1000 * (time.perf_counter() - start) / max(len(loader.dataset), 1)
    if result.previews:
        from yoloswap.reports.plots import save_prediction_grid

        save_prediction_grid(result.previews, run.names, run.out / "val_predictions.png")
    result.metrics = metrics
    return result


def _lr_columns(optimizer) -> dict:
    backbone = [g["lr"] for g in optimizer.param_groups if g.get("name", "").startswith("backbone")]
    other = [g["lr"] for g in optimizer.param_groups if not g.get("name", "").startswith("backbone")]
    return {"lr/backbone": backbone[0] if backbone else None, "lr/other": other[0] if other else None}


def _reseed_epoch(loader, seed: int, epoch: int) -> None:
    """Make epoch N's shuffle order and augmentation depend on (seed, N) only, not on the epochs this process
    happened to run before it, so a run resumed at epoch N replays it exactly (with ``--workers 0``; persistent
    workers keep their own streams). Epoch 0 keeps the loader's own seeding."""
    epoch_seed = seed if epoch == 0 else int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])
    if loader.generator is not None:
        loader.generator.manual_seed(epoch_seed)
    if loader.num_workers == 0:
        loader.dataset.reseed(epoch_seed)
