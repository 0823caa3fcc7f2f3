"""Compatibility sweep: build, probe and train one step of every torchvision classification model and every timm
architecture.

Each model is built on the meta device (the CPU when its constructor needs real numbers) and probed at 640x640;
a model that does not run there is probed at the input size it says it needs (a multiple of its pretrained
size, or exactly that size). A model that probes is then assembled into a detector on the CPU, set up as
``train`` sets it up (channels_last, the oneDNN guard of train/cpu_conv_guard.py) and takes one training step,
forward and backward, at :data:`STEP_SIZE` (or the size it needs): a forward alone does not show a backward that
fails or crashes the process (uxlfoundation/oneDNN#6035 did, for RepVGG, MobileOne, FastViT and GENet). The
result per model: ok or refused, the channels and strides measured, the parameters, the seconds, and for a
refusal the one-line reason a user would see. For timm models the measured channels are also checked against
timm's own ``feature_info``.

Writes ``yoloswap/backbones/compatibility.csv`` (shipped with the package; ``list-backbones --all`` reads it)
and ``docs/COMPATIBILITY.md``. Every model runs in a worker process with a time limit, so one model that hangs
or crashes cannot stop the sweep; results are appended to a journal as they arrive, and a rerun resumes.

    python bench/coverage.py                       # everything (about an hour on 2 busy cores)
    python bench/coverage.py --source torchvision  # one library
    python bench/coverage.py --only resnet50 --only swin_t
    python bench/coverage.py --report              # rewrite the CSV and the page from the journal only
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from yoloswap.backbones.compatibility import CSV_PATH, installed_versions, write_csv  # noqa: E402

JOURNAL = ROOT / "bench" / "coverage.journal.jsonl"
PAGE = ROOT / "docs" / "COMPATIBILITY.md"
PROBE_SIZE = 640
STEP_SIZE = 128  # the training step's input side for a model that runs at any size (the bug hunted is size-free)
STEP_BATCH = 2
STEP_MAX_PARAMS = 300e6  # larger backbones are only built and probed (their real weights would not fit in memory)


def list_models(source: str) -> list[tuple[str, str]]:
    """(model name, family) for every classification model of ``source``; the family is the library module."""
    if source == "torchvision":
        import torchvision

        names = torchvision.models.list_models(module=torchvision.models)
        return [(n, torchvision.models.get_model_builder(n).__module__.rsplit(".", 1)[-1]) for n in names]
    import timm

    family = {}
    for module in timm.list_modules():
        for name in timm.list_models(module=module):
            family.setdefault(name, module)
    return [(n, family.get(n, "")) for n in timm.list_models()]


def measure(source: str, name: str, family: str) -> dict:
    """Build and probe one model; never raises (a refusal is a result)."""
    import warnings

    warnings.filterwarnings("ignore")
    import torch

    from yoloswap.backbones.sources import build_backbone
    from yoloswap.errors import YoloswapError
    from yoloswap.backbones.resolve import library_preset
    from yoloswap.backbones.probe import fit_to_size, probe_backbone, working_size

    row = {"source": source, "name": name, "family": family, "version": installed_versions()[source], "status": "refused",
           "channels": "", "strides": "", "declared": "", "params": "", "img_size": "", "step": "", "seconds": "", "reason": ""}
    start = time.perf_counter()
    try:
        given = library_preset(source, name)
        size = PROBE_SIZE
        preset = fit_to_size(given, (size, size))  # what `--backbone SOURCE:NAME` builds for a 640 run
        with torch.device("meta"):
            backbone = build_backbone(preset)
        try:
            result = probe_backbone(backbone, (size, size), preset.name)
            if preset is not given:  # built for 640 automatically; say what it does as the library builds it
                with torch.device("meta"):
                    found = working_size(build_backbone(given))
                row["reason"] = (f"built for {size}x{size} automatically (timm's img_size); "
                                 + (f"as pretrained it {found[1]}" if found else "as pretrained it does not run"))
        except YoloswapError as first:
            found = working_size(backbone)
            if found is not None and found[0] % 32 == 0:
                size, words = found
                result = probe_backbone(backbone, (size, size), preset.name)
                row["reason"] = f"does not run at {PROBE_SIZE}x{PROBE_SIZE}; {words}"
            else:
                raise first from None
        row.update(channels="/".join(map(str, result.channels)), strides="/".join(map(str, result.strides)),
                   params=result.params, img_size=size)
        if backbone.declared_channels is not None:  # timm's feature_info, compared in the summary
            row["declared"] = "/".join(map(str, backbone.declared_channels))
        step_size = size if (size != PROBE_SIZE or preset is not given) else STEP_SIZE
        if result.params > STEP_MAX_PARAMS:  # a real copy of a billion-parameter model does not fit the sweep
            row["status"] = "ok"
            row["reason"] = "; ".join(filter(None, [row["reason"], f"no training step taken (over "
                                                    f"{STEP_MAX_PARAMS / 1e6:.0f}M backbone parameters)"]))
        elif problem := train_step(preset, step_size):
            row["reason"], row["step"] = problem, step_size
        else:
            row["status"], row["step"] = "ok", step_size
    except YoloswapError as exc:
        row["reason"] = str(exc)
    except Exception as exc:  # a raw exception is a yoloswap bug; the sweep records it so it gets fixed
        row["reason"] = f"UNWRAPPED {type(exc).__name__}: {str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ''}"
    row["seconds"] = round(time.perf_counter() - start, 2)
    return row


def train_step(preset, size: int) -> str:
    """One training step of the detector on ``preset`` at ``size`` on the CPU, set up as ``train`` sets it up;
    "" when it works, else the one-line reason. A native crash kills the worker instead: :func:`run` records it."""
    import torch

    from yoloswap.assembly import build_detector
    from yoloswap.training.cpu_conv_guard import guard_cpu_convolutions

    try:
        torch.manual_seed(0)
        model, _ = build_detector(preset, 1, (size, size))
        model.to(memory_format=torch.channels_last)  # as train/setup.build_run, for the CPU
        guard_cpu_convolutions(model)
        model.train()
        x = torch.rand(STEP_BATCH, 3, size, size).contiguous(memory_format=torch.channels_last)
        sum(o.float().mean() for o in model(x)).backward()
        bad = [n for n, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
        if bad:
            return f"a training step at {size}x{size} gives non-finite gradients (first: {bad[0]})"
    except Exception as exc:  # noqa: BLE001 - a refusal is a result
        text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        return f"a training step at {size}x{size} fails: {type(exc).__name__}: {text}"
    return ""


def _worker(tasks, results) -> None:
    while True:
        task = tasks.get()
        if task is None:
            return
        results.put(measure(*task))


def run(tasks: list[tuple[str, str, str]], workers: int, timeout: float) -> None:
    """Measure ``tasks`` in ``workers`` processes, one model at a time each; a model over ``timeout`` seconds
    is recorded as refused and its worker replaced."""
    ctx = mp.get_context("fork")
    pending = list(reversed(tasks))
    slots: list[dict] = []
    done = 0
    with JOURNAL.open("a") as journal:
        def start_slot() -> dict:
            tq, rq = ctx.Queue(), ctx.Queue()
            proc = ctx.Process(target=_worker, args=(tq, rq), daemon=True)
            proc.start()
            return {"proc": proc, "tasks": tq, "results": rq, "task": None, "since": 0.0}

        def record(row: dict) -> None:
            nonlocal done
            done += 1
            journal.write(json.dumps(row) + "\n")
            journal.flush()
            print(f"[{done}/{len(tasks)}] {row['source']}:{row['name']} {row['status']} {row['channels']} "
                  f"{row['seconds']}s {row['reason'][:100]}", flush=True)

        slots = [start_slot() for _ in range(workers)]
        while pending or any(s["task"] for s in slots):
            for i, slot in enumerate(slots):
                if slot["task"] is None and pending:
                    slot["task"], slot["since"] = pending.pop(), time.monotonic()
                    slot["tasks"].put(slot["task"])
                    continue
                if slot["task"] is None:
                    continue
                try:
                    row = slot["results"].get(timeout=0.05)
                except Exception:
                    row = None
                if row is not None:
                    record(row)
                    slot["task"] = None
                elif not slot["proc"].is_alive() or time.monotonic() - slot["since"] > timeout:
                    source, name, family = slot["task"]
                    why = (f"took longer than {timeout:.0f} s to build, probe and train a step"
                           if slot["proc"].is_alive() else f"building, probing or one training step crashed the "
                           f"process (exit code {slot['proc'].exitcode})")
                    slot["proc"].kill()
                    slot["proc"].join()
                    record({"source": source, "name": name, "family": family, "version": "", "status": "refused",
                            "channels": "", "strides": "", "declared": "", "params": "", "img_size": "",
                            "seconds": round(time.monotonic() - slot["since"], 2), "reason": why})
                    slots[i] = start_slot()
        for slot in slots:
            slot["tasks"].put(None)
            slot["proc"].join(timeout=5)


def read_journal(shipped: bool = True) -> dict[tuple[str, str], dict]:
    """The measurements so far: the shipped CSV (unless ``shipped`` is false: a fresh sweep) with this machine's
    journal over it, so ``--only NAME`` updates one row of the shipped table."""
    from yoloswap.backbones.compatibility import read_compatibility

    rows: dict[tuple[str, str], dict] = {}
    if shipped:
        rows.update({(r["source"], r["name"]): dict(r) for r in read_compatibility()})
    if JOURNAL.is_file():
        for line in JOURNAL.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                rows[(row["source"], row["name"])] = row  # a later measurement replaces an earlier one
    return rows


def write_page(rows: list[dict], elapsed: str) -> None:
    """docs/COMPATIBILITY.md: counts per library and per family, the refusal reasons, then the full table."""
    from collections import Counter, defaultdict

    lines = [
        "# Backbone compatibility",
        "",
        "Every torchvision classification model and every timm architecture, built and probed by "
        "`bench/coverage.py` (meta device; CPU for models whose constructor needs real numbers) at "
        f"{PROBE_SIZE}x{PROBE_SIZE}, or at the input size the model says it needs, then assembled into a detector "
        f"that takes one training step (forward and backward, CPU, {STEP_SIZE}x{STEP_SIZE} or the size it needs, "
        "in a worker process so a native crash is a row). `ok` means the three levels "
        "at strides 8, 16 and 32 came out, (timm) their channels equal timm's own `feature_info`, and the step "
        "trained; `refused` "
        "gives the one line a user sees. `yoloswap list-backbones --all` prints this table from the copy "
        "shipped with the package. Regenerate with `python bench/coverage.py`.",
        "",
        f"Measured with {', '.join(sorted({r['source'] + ' ' + r['version'] for r in rows if r['version']}))}. "
        + elapsed,
        "",
        "## Summary per library",
        "",
        "| library | models | ok at 640 as is | ok at 640 built for it (automatically) | ok only at another size "
        "| refused | pyramid models (strides 8/16/32) | ok among them |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for source in ("torchvision", "timm"):
        mine = [r for r in rows if r["source"] == source]
        if not mine:
            continue
        ok = [r for r in mine if r["status"] == "ok"]
        at640 = [r for r in ok if str(r["img_size"]) == str(PROBE_SIZE) and not r["reason"]]
        built = [r for r in ok if str(r["img_size"]) == str(PROBE_SIZE) and r["reason"]]
        pyramid = [r for r in mine if _is_pyramid(r)]
        pyramid_ok = [r for r in pyramid if r["status"] == "ok"]
        share = f" ({100 * len(pyramid_ok) / len(pyramid):.1f}%)" if pyramid else ""
        lines.append(f"| {source} | {len(mine)} | {len(at640)} | {len(built)} | {len(ok) - len(at640) - len(built)} | "
                     f"{len(mine) - len(ok)} | {len(pyramid)} | {len(pyramid_ok)}{share} |")
    for source in ("torchvision", "timm"):
        pyramid = [r for r in rows if r["source"] == source and _is_pyramid(r)]
        at640 = [r for r in pyramid if r["status"] == "ok" and str(r["img_size"]) == str(PROBE_SIZE)]
        if pyramid:
            lines.append(f"\n{source}: {len(at640)} of {len(pyramid)} pyramid models "
                         f"({100 * len(at640) / len(pyramid):.1f}%) train at {PROBE_SIZE}x{PROBE_SIZE} with no setting "
                         f"(`--backbone {source}:NAME`).")
    stepped = [r for r in rows if r["status"] == "ok" and r.get("step")]
    lines += ["", f"{len(stepped)} of the {sum(r['status'] == 'ok' for r in rows)} ok rows took a training step "
              "(column `step`: its input side); the others were built and probed only, by the sweep before it "
              "trained a step (`python bench/coverage.py --fresh` measures them all again)."]
    declared = [r for r in rows if r["status"] == "ok" and r.get("declared")]
    differ = [f"{r['source']}:{r['name']} ({r['channels']} vs {r['declared']})"
              for r in declared if r["declared"] != r["channels"]]
    lines += ["", f"Channels against timm's own `feature_info` (last feature at reductions 8, 16, 32): "
              f"{len(declared) - len(differ)} of {len(declared)} working timm models agree"
              + (f"; they differ for {', '.join(differ)}." if differ else ".")]
    lines += ["", "A *pyramid model* is one whose levels reach strides 8, 16 and 32 (everything but the refusals "
              "for missing strides); it is the denominator of the \"≥ 95% work\" target. *Built for it*: timm builds "
              "windowed and position-table models (MaxViT, CoAtNet, Hiera, Swin V2, ...) for their pretrained size; "
              "where such a model does not run at the training size as built, yoloswap builds it for that size "
              "(timm's `img_size`; `probe.fit_to_size`), records that in the run, and resizes pretrained "
              "relative-position tables with timm's own checkpoint filter. *Only at another size*: the input size "
              "in the table (or a multiple, where the reason says so).", "",
              "## Why models are refused", "", "| reason | models | examples |", "|---|---:|---|"]
    kinds: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        if r["status"] != "ok":
            kinds[_reason_kind(r["reason"])].append(f"{r['source']}:{r['name']}")
    for kind, names in sorted(kinds.items(), key=lambda kv: -len(kv[1])):
        lines.append(f"| {kind} | {len(names)} | {', '.join(names[:4])}{', …' if len(names) > 4 else ''} |")
    lines += ["", "## Summary per family", "", "| library | family | models | ok | refused |", "|---|---|---:|---:|---:|"]
    fam = Counter((r["source"], r["family"], r["status"]) for r in rows)
    for source, family in sorted({(r["source"], r["family"]) for r in rows}):
        ok, bad = fam[(source, family, "ok")], fam[(source, family, "refused")]
        lines.append(f"| {source} | {family} | {ok + bad} | {ok} | {bad} |")
    lines += ["", "## Every model", "",
              "| model | status | channels | strides | params | input | seconds | reason |",
              "|---|---|---|---|---:|---:|---:|---|"]
    for r in rows:
        params = f"{int(r['params']) / 1e6:.1f}M" if r["params"] not in ("", None) else ""
        reason = str(r["reason"]).replace("|", "\\|")
        lines.append(f"| {r['source']}:{r['name']} | {r['status']} | {r['channels']} | {r['strides']} | {params} | "
                     f"{r['img_size']} | {r['seconds']} | {reason} |")
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text("\n".join(lines) + "\n")


def _is_pyramid(row: dict) -> bool:
    return row["status"] == "ok" or "needs strides 8, 16 and 32" not in row["reason"]


def _reason_kind(reason: str) -> str:
    """Refusal reasons grouped into a few kinds for the summary (the full text stays in the table)."""
    rules = (
        ("one stride only", "one stride only (plain ViT-like model)"),
        ("no feature map is an exact fraction", "no exact stride-8/16/32 maps (unpadded convolutions or pooling)"),
        ("not exact fractions", "no exact stride-8/16/32 maps (unpadded convolutions or pooling)"),
        ("needs strides 8, 16 and 32", "missing a stride-8, 16 or 32 level"),
        ("does not run on a", "does not run at any input size tried"),
        ("feature_info", "probed channels differ from feature_info"),
        ("took longer", "timed out"),
        ("crashed", "crashed the process"),
        ("a training step", "a training step fails"),
        ("UNWRAPPED", "unwrapped exception (a yoloswap bug)"),
        ("cannot be built", "cannot be built"),
        ("cannot be cut", "cannot be cut at strides 8/16/32"),
    )
    return next((kind for key, kind in rules if key in reason), "other")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", choices=("all", "timm", "torchvision"), default="all")
    parser.add_argument("--only", action="append", default=[], help="model name (repeatable)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per model")
    parser.add_argument("--fresh", action="store_true", help="forget the journal and measure everything again")
    parser.add_argument("--redo-refused", action="store_true", help="measure again the models refused so far")
    parser.add_argument("--report", action="store_true", help="only rewrite the CSV and the page")
    args = parser.parse_args()

    if args.fresh and JOURNAL.exists():
        JOURNAL.unlink()
    sources = ("torchvision", "timm") if args.source == "all" else (args.source,)
    start = time.perf_counter()
    if not args.report:
        known = read_journal(shipped=not args.fresh)
        tasks = []
        for source in sources:
            for name, family in list_models(source):
                if args.only and name not in args.only:
                    continue
                old = known.get((source, name))
                if args.only or old is None or (args.redo_refused and old["status"] != "ok"):
                    tasks.append((source, name, family))
        print(f"measuring {len(tasks)} models with {args.workers} workers", flush=True)
        run(tasks, args.workers, args.timeout)
    elapsed = time.perf_counter() - start
    rows = sorted(read_journal(shipped=not args.fresh).values(), key=lambda r: (r["source"] != "torchvision", r["name"]))
    versions = installed_versions()
    for r in rows:  # the package metadata's spelling ("0.29.1", not torch's "0.29.1+cu130"), as list-backbones reads it
        if r["version"] and r["version"].split("+")[0] == str(versions[r["source"]]).split("+")[0]:
            r["version"] = versions[r["source"]]
    write_csv(rows, CSV_PATH)
    total = sum(float(r["seconds"] or 0) for r in rows)
    note = f"Sum of the per-model build, probe and training-step times: {total / 60:.1f} min."
    write_page(rows, note)
    print(f"{len(rows)} models in {CSV_PATH.relative_to(ROOT)} and {PAGE.relative_to(ROOT)}; {elapsed:.0f} s")


if __name__ == "__main__":
    main()
