"""Plant one-line bugs in a copy of the repository and check that the test suite notices each of them.

Issue 15: a review planted single-line bugs (CIoU's alpha carrying gradient, cosine decay turned linear, the warmup
turned into a jump, resume forgetting part of its state, a sign error undoing the letterbox...) and the whole suite
stayed green. This keeps that review: every mutation below is one exact snippet of the code, its replacement, and
the tests that must fail. Run it before saying a change to the training loop is done, and quote its last line.

    .venv/bin/python bench/mutations.py                       # every mutation, each against its own tests (~15 min)
    .venv/bin/python bench/mutations.py --only resume         # the mutations whose name contains "resume"
    .venv/bin/python bench/mutations.py --only ema-never-updates --tests tests/            # against the whole suite
    .venv/bin/python bench/mutations.py --list

The repository (without .git, .venv and caches) is copied to a temporary folder once; each mutation edits one file
there, runs ``python -m pytest -x`` on its tests with that copy first on the import path, and puts the file back.
Outcomes: ``killed`` (a test failed: good), ``SURVIVED`` (the tests passed: a gap to close), ``PATTERN NOT FOUND``
or ``PATTERN AMBIGUOUS`` (the code changed: update the snippet here), ``TIMEOUT``. The exit status is 0 only when
every selected mutation was killed. A benchmark-style tool, not a test: it takes minutes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IGNORED = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.pyc", ".pytest_cache", "runs", "*.egg-info",
                                 "build", "dist", "*.cache.npz")
TIMEOUT_S = 900

LOOP = "tests/test_loop_train.py"
ACCUMULATION = f"{LOOP}::test_gradients_accumulate_to_the_nominal_batch_and_weight_decay_follows_it"
RESUME = "tests/test_loop_resume.py"
LETTERBOX = "tests/test_letterbox_mapping.py"
FREEZE = ("tests/test_freeze_and_optim.py::test_frozen_stages_and_norm_eval_hold_across_model_train",
          "tests/test_freeze_and_optim.py::test_frozen_stages_receive_no_updates_and_their_statistics_do_not_move")


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str  # relative to the repository root
    original: str  # must occur exactly once in the file
    replacement: str
    description: str
    tests: tuple[str, ...]  # pytest arguments (files or node ids) that must fail


def m(name: str, path: str, original: str, replacement: str, description: str, *tests: str) -> Mutation:
    return Mutation(name, path, original, replacement, description, tests)


MUTATIONS: tuple[Mutation, ...] = (
    # --- the loss
    m("ciou-alpha-gradient", "yoloswap/ops.py",
      "    with torch.no_grad():\n        alpha = v / (v - iou + (1 + eps))",
      "    if True:\n        alpha = v / (v - iou + (1 + eps))",
      "CIoU's alpha carries gradient", "tests/test_ops.py"),
    # --- the lr schedule
    m("cosine-as-linear", "yoloswap/training/schedule.py", "        if self.cosine:\n", "        if False:\n",
      "cosine decay silently replaced by linear", "tests/test_schedule.py"),
    m("warmup-lr-jump", "yoloswap/training/schedule.py",
      'group["lr"] = float(np.interp(iteration, [0, nw], [start, target]))', 'group["lr"] = target',
      "warmup lr is a jump instead of a ramp", "tests/test_schedule.py"),
    m("warmup-bias-lr-from-zero", "yoloswap/training/schedule.py",
      'start = self.warmup_bias_lr * group.get("lr_mult", 1.0) if group.get("kind") == "bias" else 0.0',
      "start = 0.0", "biases warm up from 0 instead of warmup_bias_lr", "tests/test_schedule.py"),
    m("warmup-momentum-jump", "yoloswap/training/schedule.py",
      'group["momentum"] = float(np.interp(iteration, [0, nw], [self.warmup_momentum, self.momentum]))',
      'group["momentum"] = self.momentum', "SGD momentum warmup is a jump", "tests/test_schedule.py"),
    m("warmup-beta1-jump", "yoloswap/training/schedule.py",
      "beta1 = float(np.interp(iteration, [0, nw], [self.warmup_momentum, self.momentum]))",
      "beta1 = self.momentum", "AdamW beta1 warmup is a jump", "tests/test_schedule.py"),
    # --- EMA
    m("ema-never-updates", "yoloswap/training/loop.py", "        run.ema.update(run.model)\n", "        pass\n",
      "the loop never updates the EMA", ACCUMULATION),
    m("ema-update-keeps-old-weights", "yoloswap/training/ema.py",
      "torch._foreach_add_(mine, theirs, alpha=1 - d)", "pass",
      "ModelEMA.update does not average the model in", "tests/test_ema.py"),
    m("ema-no-decay-ramp", "yoloswap/training/ema.py",
      "return self.decay * (1 - math.exp(-self.updates / self.tau))", "return self.decay",
      "EMA decay without its warm-up ramp", "tests/test_ema.py"),
    # --- accumulation and weight decay
    m("no-accumulation", "yoloswap/training/schedule.py",
      "        return max(1, round(target))", "        return 1",
      "no gradient accumulation to the nominal batch", ACCUMULATION),
    m("step-every-batch", "yoloswap/training/loop.py",
      "if ni - last_step >= run.schedule.accumulate_at(ni) or i == nb - 1:", "if True:",
      "the optimizer steps after every batch", ACCUMULATION),
    m("no-weight-decay-scaling", "yoloswap/training/setup.py",
      "wd *= options.batch_size * accumulate / options.nominal_batch", "wd *= 1.0",
      "weight decay not scaled with the nominal batch", ACCUMULATION),
    m("no-scaler-update", "yoloswap/training/loop.py", "    run.scaler.update()\n", "    pass\n",
      "the loss scaler never adapts its scale", RESUME),
    # --- resume
    m("resume-forgets-model", "yoloswap/training/state.py",
      '    unwrap(run.model).load_state_dict(ckpt["model"])\n', "    pass\n",
      "resume forgets the model weights", RESUME),
    m("resume-forgets-ema", "yoloswap/training/state.py",
      '        run.ema.module.load_state_dict(ckpt["ema"])\n', "        pass\n",
      "resume forgets the EMA weights", RESUME),
    m("resume-forgets-ema-updates", "yoloswap/training/state.py",
      '        run.ema.updates = int(ckpt.get("ema_updates", 0))\n', "        pass\n",
      "resume restarts the EMA's update count", RESUME),
    m("resume-forgets-optimizer", "yoloswap/training/state.py",
      '    run.optimizer.load_state_dict(ckpt["optimizer"])\n', "    pass\n",
      "resume forgets the optimizer state", RESUME),
    m("resume-forgets-scaler", "yoloswap/training/state.py",
      '        run.scaler.load_state_dict(ckpt["scaler"])\n', "        pass\n",
      "resume forgets the AMP loss scaler", RESUME),
    m("resume-forgets-rng", "yoloswap/training/state.py", '        set_rng_state(ckpt["rng"])\n', "        pass\n",
      "resume forgets the random generators' state", RESUME),
    m("resume-forgets-best-fitness", "yoloswap/training/state.py",
      'run.best_fitness = float(ckpt.get("best_fitness", -1.0))', "run.best_fitness = -1.0",
      "resume forgets the best fitness (best.pt overwritten by a worse epoch)", RESUME),
    m("resume-repeats-an-epoch", "yoloswap/training/state.py",
      'run.start_epoch = int(ckpt["epoch"]) + 1', 'run.start_epoch = int(ckpt["epoch"])',
      "resume starts again at the last completed epoch", RESUME),
    # --- letterbox undone in val and predict
    m("unletterbox-x-sign", "yoloswap/data/transforms.py",
      'out[:, [0, 2]] = ((out[:, [0, 2]] - pad_x) / meta["ratio"])',
      'out[:, [0, 2]] = ((out[:, [0, 2]] + pad_x) / meta["ratio"])',
      "sign error undoing the letterbox (x)", LETTERBOX),
    m("unletterbox-y-sign", "yoloswap/data/transforms.py",
      'out[:, [1, 3]] = ((out[:, [1, 3]] - pad_y) / meta["ratio"])',
      'out[:, [1, 3]] = ((out[:, [1, 3]] + pad_y) / meta["ratio"])',
      "sign error undoing the letterbox (y)", LETTERBOX),
    m("unletterbox-times-ratio", "yoloswap/data/transforms.py",
      'out[:, [0, 2]] = ((out[:, [0, 2]] - pad_x) / meta["ratio"])',
      'out[:, [0, 2]] = ((out[:, [0, 2]] - pad_x) * meta["ratio"])',
      "multiplies by the letterbox ratio instead of dividing", LETTERBOX),
    m("val-skips-unletterbox", "yoloswap/evaluation/loop.py",
      "acc.add(_eval_image(sample), to_original(det, meta))", "acc.add(_eval_image(sample), det)",
      "evaluate scores letterboxed boxes against original-image labels", LETTERBOX),
    m("predict-skips-unletterbox", "yoloswap/deploy/predict.py",
      "dets = [to_original(d, m) for d, m in zip(", "dets = [d for d, m in zip(",
      "predict returns letterboxed boxes", LETTERBOX),
    m("predict-pad-axes-swapped", "yoloswap/deploy/predict.py",
      '"ratio": ratio, "pad": pad, "orig_size": image.shape[:2]}', '"ratio": ratio, "pad": pad[::-1], "orig_size": image.shape[:2]}',
      "predict undoes the padding on the wrong axes", LETTERBOX),
    # --- AMP
    m("amp-fp16-where-bf16", "yoloswap/training/precision.py",
      "torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16",
      "torch.float16 if torch.cuda.is_bf16_supported() else torch.bfloat16",
      "AMP dtype choice inverted", "tests/test_run_setup.py"),
    m("amp-ignores-no-amp", "yoloswap/training/precision.py",
      "    if not enabled:\n        return None\n", "",
      "--no-amp ignored", "tests/test_run_setup.py"),
    m("cpu-bf16-on-any-gain", "yoloswap/training/precision.py", "BF16_MIN_GAIN = 0.9", "BF16_MIN_GAIN = 1.0",
      "bf16 kept on the CPU for a gain within measuring noise", "tests/test_precision.py"),
    m("cpu-precision-draws-random-numbers", "yoloswap/training/precision.py",
      'with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):',
      "if True:", "measuring a step shifts the run's seeded random stream", "tests/test_precision.py"),
    m("amp-cpu-bf16-everywhere", "yoloswap/training/precision.py",
      "return torch.bfloat16 if cpu_has_native_bf16() else None", "return torch.bfloat16",
      "a CPU without native bf16 trains in (slow, emulated) bf16", "tests/test_run_setup.py"),
    # --- mosaic, --time, run folders
    m("mosaic-never-off", "yoloswap/training/loop.py",
      "train_loader.dataset.mosaic_enabled = mosaic_on(epoch, epochs, options.close_mosaic)",
      "train_loader.dataset.mosaic_enabled = True",
      "mosaic never switched off for the last epochs", f"{LOOP}::test_mosaic_is_switched_off_for_the_last_epochs"),
    m("mosaic-off-an-epoch-late", "yoloswap/training/loop.py",
      "    return epoch < epochs - closed\n", "    return epoch <= epochs - closed\n",
      "mosaic switched off one epoch late", f"{LOOP}::test_mosaic_is_switched_off_for_the_last_epochs"),
    m("time-refit-ignored", "yoloswap/training/loop.py",
      "            epochs = _refit_to_time(run, epochs, epoch + 1, time.perf_counter() - budget_start, log)\n",
      "            _refit_to_time(run, epochs, epoch + 1, time.perf_counter() - budget_start, log)\n",
      "--time: the loop ignores the refitted epochs",
      f"{LOOP}::test_time_budget_refits_the_epochs_and_the_lr_schedule_inside_the_loop"),
    m("time-refit-keeps-schedule", "yoloswap/training/loop.py",
      "        run.schedule = dataclasses.replace(run.schedule, epochs=fitted)\n", "",
      "--time: the lr schedule is not refitted to the new epochs",
      f"{LOOP}::test_time_budget_refits_the_epochs_and_the_lr_schedule_inside_the_loop"),
    m("time-last-epoch-unvalidated", "yoloswap/training/loop.py",
      "        final = epoch == epochs - 1\n", "        final = epoch == run.max_epochs - 1\n",
      "--time with --val-interval: the epoch the budget makes the last is not validated",
      f"{LOOP}::test_an_epoch_the_time_budget_makes_the_last_is_validated_whatever_the_val_interval"),
    m("time-fit-rounds-up", "yoloswap/training/loop.py",
      "remaining = int(max(budget_s - spent_s, 0.0) // max(per_epoch, 1e-9))",
      "remaining = math.ceil(max(budget_s - spent_s, 0.0) / max(per_epoch, 1e-9))",
      "--time: a partial epoch counted as a whole one", "tests/test_run_setup.py"),
    m("run-folder-numbering", "yoloswap/run_folders.py",
      'candidate = base / (name if i == 1 else f"{name}{i}")',
      'candidate = base / (name if i == 1 else f"{name}{i + 1}")',
      "run folders numbered exp, exp3, exp4", "tests/test_run_setup.py"),
    m("exist-ok-ignored", "yoloswap/training/rundir.py",
      "if out.exists() and any(out.iterdir()) and not exist_ok:", "if out.exists() and any(out.iterdir()):",
      "--exist-ok ignored", "tests/test_run_setup.py"),
    m("existing-run-overwritten", "yoloswap/training/rundir.py",
      "if out.exists() and any(out.iterdir()) and not exist_ok:", "if False:",
      "an existing run is overwritten without --exist-ok", "tests/test_run_setup.py"),
    # --- freezing, presets, README's tables
    m("freeze-only-the-stem", "yoloswap/backbones/freeze.py",
      "for group in backbone.stages[: frozen_stages + 1]:", "for group in backbone.stages[: frozen_stages]:",
      "frozen_stages: 1 freezes the stem only", *FREEZE),
    m("stages-grouped-one-off", "yoloswap/backbones/stages.py",
      "ends = [(k + 1, e) for k, e in enumerate(stage_ends) if e]",
      "ends = [(k, e) for k, e in enumerate(stage_ends) if e]",
      "stage grouping shifted by one (frozen_stages: 1 freezes two stages)", *FREEZE),
    m("sgd-without-nesterov", "yoloswap/training/optim.py", "nesterov=momentum > 0", "nesterov=False",
      "SGD without Nesterov momentum", "tests/test_presets.py"),
    m("preset-resnet50-not-frozen", "presets/resnet50.yaml", "frozen_stages: 1", "frozen_stages: 0",
      "ResNet-50 preset trains its stem and layer1", "tests/test_presets.py"),
    m("preset-resnet50-no-norm-eval", "presets/resnet50.yaml", "norm_eval: true", "norm_eval: false",
      "ResNet-50 preset updates BatchNorm statistics", "tests/test_presets.py"),
    m("preset-sgd-momentum", "presets/yolov5s.yaml", "momentum: 0.937", "momentum: 0.9",
      "a CSPDarknet preset's SGD momentum is not README's 0.937", "tests/test_presets.py"),
    m("preset-adamw-weight-decay", "presets/convnext-tiny.yaml", "weight_decay: 0.05", "weight_decay: 0.01",
      "ConvNeXt's AdamW weight decay is not README's 0.05", "tests/test_presets.py"),
    m("neck-depth", "yoloswap/assembly.py", "return max(round(3 * depth), 1)",
      "return max(round(3 * depth), 2)", "neck sizes no longer those of README's neck-width table",
      "tests/test_presets.py::test_readme_neck_width_table_is_what_info_reports"),
)


@dataclass
class Outcome:
    mutation: Mutation
    status: str  # killed | SURVIVED | PATTERN NOT FOUND | PATTERN AMBIGUOUS | TIMEOUT
    seconds: float = 0.0
    detail: str = ""


def copy_repository(dest: Path) -> Path:
    """The working tree without git, the venv and caches; the mutated copy is what the tests import."""
    shutil.copytree(ROOT, dest, ignore=IGNORED)
    return dest


def pytest_env(copy: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(copy), PYTHONDONTWRITEBYTECODE="1")
    env.setdefault("OMP_NUM_THREADS", "2")
    return env


def check_imports_the_copy(copy: Path) -> None:
    """An editable install could shadow the copy; refuse to report anything if it does."""
    out = subprocess.run([sys.executable, "-c", "import yoloswap; print(yoloswap.__file__)"], cwd=copy,
                         env=pytest_env(copy), capture_output=True, text=True, check=True).stdout.strip()
    if not Path(out).resolve().is_relative_to(copy.resolve()):
        sys.exit(f"the tests would import {out}, not the mutated copy in {copy}")


def run_tests(copy: Path, tests: tuple[str, ...]) -> tuple[int | None, float, str]:
    """``pytest -x`` on ``tests`` inside ``copy``: (exit code or None on timeout, seconds, last output line)."""
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=copy, env=pytest_env(copy), capture_output=True, text=True,
                              timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return None, time.perf_counter() - start, f"no result in {TIMEOUT_S} s"
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    return proc.returncode, time.perf_counter() - start, lines[-1] if lines else proc.stderr.strip()[-200:]


def try_mutation(copy: Path, mutation: Mutation, tests: tuple[str, ...]) -> Outcome:
    target = copy / mutation.path
    if not target.is_file():
        return Outcome(mutation, "PATTERN NOT FOUND", detail=f"{mutation.path} does not exist")
    text = target.read_text()
    count = text.count(mutation.original)
    if count != 1:
        status = "PATTERN NOT FOUND" if count == 0 else "PATTERN AMBIGUOUS"
        return Outcome(mutation, status, detail=f"{mutation.path}: {mutation.original.strip()!r} found {count}x")
    target.write_text(text.replace(mutation.original, mutation.replacement))
    try:
        code, seconds, last = run_tests(copy, tests)
    finally:
        target.write_text(text)
    if code is None:
        return Outcome(mutation, "TIMEOUT", seconds, last)
    if code == 0:
        return Outcome(mutation, "SURVIVED", seconds, last)
    if code == 1:
        return Outcome(mutation, "killed", seconds, last)
    return Outcome(mutation, "killed", seconds, f"pytest exit {code} (error, not a failing assertion): {last}")


def select(only: list[str] | None) -> list[Mutation]:
    if not only:
        return list(MUTATIONS)
    chosen = [mu for mu in MUTATIONS if any(o in mu.name for o in only)]
    if not chosen:
        sys.exit(f"--only {' '.join(only)}: matches none of {', '.join(mu.name for mu in MUTATIONS)}")
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="mutations whose name contains any of these")
    parser.add_argument("--tests", nargs="+", metavar="FILE",
                        help="run these tests for every selected mutation instead of its own (e.g. tests/)")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip checking that the selected tests pass on the unmutated copy")
    args = parser.parse_args(argv)

    chosen = select(args.only)
    if args.list:
        for mu in chosen:
            print(f"{mu.name:32} {mu.path:32} {mu.description}")
        return 0
    with tempfile.TemporaryDirectory(prefix="yoloswap-mutations-") as tmp:
        copy = copy_repository(Path(tmp) / "repo")
        check_imports_the_copy(copy)
        if not args.no_baseline:
            tests = tuple(args.tests) if args.tests else tuple(dict.fromkeys(t for mu in chosen for t in mu.tests))
            code, seconds, last = run_tests(copy, tests)
            print(f"baseline (unmutated) {seconds:6.1f} s: {last}", flush=True)
            if code != 0:
                print("the selected tests fail without any mutation; fix that first", file=sys.stderr)
                return 2
        outcomes = []
        for mu in chosen:
            outcome = try_mutation(copy, mu, tuple(args.tests) if args.tests else mu.tests)
            outcomes.append(outcome)
            print(f"{outcome.status:18} {mu.name:30} {outcome.seconds:6.1f} s  {mu.description}"
                  + (f"  [{outcome.detail}]" if outcome.status != "killed" or "error" in outcome.detail else ""),
                  flush=True)
    counts = {s: sum(o.status == s for o in outcomes) for s in dict.fromkeys(o.status for o in outcomes)}
    print(f"{len(outcomes)} mutations: " + ", ".join(f"{n} {s.lower()}" for s, n in counts.items())
          + f"; {counts.get('SURVIVED', 0)} survivors")
    return 0 if counts.get("killed", 0) == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
