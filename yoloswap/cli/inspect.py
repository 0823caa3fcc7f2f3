"""Commands that look at backbones and models without training: list-backbones, probe-channels, info."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from yoloswap.cli import help as H

BackboneOpt = Annotated[
    Optional[str],
    typer.Option("--backbone", "-b", rich_help_panel=H.MODEL,
                 help="Preset name, preset YAML path, timm:NAME or torchvision:NAME (see list-backbones)."),
]
ImgSizeOpt = Annotated[str, typer.Option("--img-size", rich_help_panel=H.DATA,
                                         help="Input size in pixels: one int or HxW (multiples of 32).")]
DeviceOpt = Annotated[str, typer.Option("--device", rich_help_panel=H.HARDWARE,
                                        help="auto (CUDA when present), cpu, cuda, cuda:N or meta (shapes only).")]
JsonOpt = Annotated[bool, H.flag("--json", rich_help_panel=H.OUTPUT, help="Print JSON to stdout instead of a table.")]


def list_backbones(
    every: Annotated[bool, H.flag("--all", rich_help_panel=H.MODEL,
                                  help="Every timm and torchvision model, from the shipped compatibility sweep.")] = False,
    source: Annotated[Optional[str], typer.Option("--source", rich_help_panel=H.MODEL,
                                                  help="With --all: only timm or torchvision.")] = None,
    pattern: Annotated[Optional[str], typer.Option("--filter", rich_help_panel=H.MODEL,
                                                   help="With --all: model names matching a glob, e.g. 'convnext*'.")] = None,
    measure: Annotated[bool, H.flag("--probe", rich_help_panel=H.MODEL, help="With --all: measure the listed "
                                    "working models' channels now (meta device).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List the backbone presets with their probed channels, strides and sizes (--all: every library model)."""
    if every or source or pattern or measure:
        _list_all_models(source, pattern, measure, as_json)
        return
    from rich.table import Table

    from yoloswap.cli.console import out, print_json
    from yoloswap.config.presets import load_presets
    from yoloswap.backbones.probe import cached_probe

    rows = [(preset, cached_probe(preset, (640, 640))) for preset in load_presets()]  # meta-device probes
    if as_json:
        print_json(
            [
                {
                    "name": p.name,
                    "family": p.family,
                    "description": p.description,
                    "source": f"{p.model.source}:{p.model.name}",
                    "weights": p.weights,
                    "channels": list(r.channels),
                    "strides": list(r.strides),
                    "params": r.params,
                }
                for p, r in rows
            ]
        )
        return
    table = Table(title="yoloswap backbone presets (channels probed at 640×640)")
    for col in ("name", "family", "source", "pretrained weights", "channels", "strides", "params"):
        table.add_column(col, no_wrap=col != "pretrained weights", overflow="ellipsis", max_width=34)
    for p, r in rows:
        table.add_row(
            p.name,
            p.family,
            f"{p.model.source}:{p.model.name}",
            _short_weights(p.weights),
            "/".join(map(str, r.channels)),
            "/".join(map(str, r.strides)),
            f"{r.params / 1e6:.1f}M",
        )
    out.print(table)
    out.print(
        "Any timm or torchvision classification model works too: [bold]--backbone timm:NAME[/] or "
        "[bold]--backbone torchvision:NAME[/] (levels picked by measured stride); or a path to your own preset YAML."
    )


def _list_all_models(source: str | None, pattern: str | None, measure: bool, as_json: bool) -> None:
    """``list-backbones --all``: the shipped sweep's verdict per model, channels probed only when asked."""
    from rich.table import Table

    from yoloswap.backbones.compatibility import installed_versions, read_compatibility, select
    from yoloswap.cli.console import err, out, print_json

    rows = select(read_compatibility(), source, pattern)
    if measure:
        rows = [dict(r, channels=_probe_listed(r, err)) for r in rows]
    if as_json:
        print_json([_row_json(r, measure) for r in rows])
        return
    versions = installed_versions()
    table = Table(title=f"timm and torchvision models as YOLOv5 backbones ({len(rows)} listed)")
    for col in ("backbone", "status", "input", "measured with", *(["channels"] if measure else []), "reason"):
        table.add_column(col, overflow="fold" if col == "reason" else "ellipsis", no_wrap=col != "reason")
    for r in rows:
        now = versions.get(r["source"])
        stale = "" if now == r["version"] else f" [yellow](installed: {now})[/]"
        table.add_row(
            f"{r['source']}:{r['name']}",
            "[green]ok[/]" if r["status"] == "ok" else "[red]refused[/]",
            r["img_size"],
            f"{r['source']} {r['version']}{stale}",
            *([r["channels"]] if measure else []),
            r["reason"],
        )
    out.print(table)
    ok = sum(r["status"] == "ok" for r in rows)
    out.print(f"{ok} of {len(rows)} work. Channels: add [bold]--probe[/], or `yoloswap probe-channels -b SOURCE:NAME`.")


def _probe_listed(row: dict, err) -> str:
    """Channels of one listed model, measured now on the meta device; refused models keep their reason."""
    from yoloswap.backbones.resolve import library_preset
    from yoloswap.errors import YoloswapError
    from yoloswap.backbones.probe import probe

    if row["status"] != "ok":
        return ""
    size = int(row["img_size"] or 640)
    try:
        with err.status(f"probing {row['source']}:{row['name']}"):
            result = probe(library_preset(row["source"], row["name"]), (size, size), "meta")
    except YoloswapError as exc:
        return f"refused now: {exc}"
    return "/".join(map(str, result.channels))


def _row_json(row: dict, measured: bool) -> dict:
    data = {
        "backbone": f"{row['source']}:{row['name']}",
        "source": row["source"],
        "family": row["family"],
        "status": row["status"],
        "measured_with": f"{row['source']} {row['version']}",
        "img_size": int(row["img_size"]) if row["img_size"] else None,
        "reason": row["reason"],
    }
    if measured:
        data["channels"] = [int(c) for c in row["channels"].split("/")] if row["channels"][:1].isdigit() else None
    return data


def probe_channels(
    backbone: BackboneOpt = None,
    img_size: ImgSizeOpt = "640",
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Send a dummy tensor through a backbone (or every preset) and report what comes out per level."""
    from rich.table import Table

    from yoloswap.backbones.resolve import resolve_backbone
    from yoloswap.cli.console import err, out, print_json
    from yoloswap.config.presets import load_presets
    from yoloswap.backbones.probe import parse_img_size, probe
    from yoloswap.device import resolve_device

    size = parse_img_size(img_size)
    resolve_device(device)  # fail early and clearly on a missing CUDA
    presets = [resolve_backbone(backbone)] if backbone else load_presets()
    results = []
    for preset in presets:
        with err.status(f"probing {preset.name} on {device} at {size[0]}x{size[1]}"):
            results.append(probe(preset, size, device))
    if as_json:
        data = [r.to_dict() for r in results]
        print_json(data[0] if backbone else data)
        return
    table = Table(title=f"Probed at {size[0]}×{size[1]}")
    for col in ("backbone", "level", "channels", "stride", "feature map", "tap", "params", "device", "seconds"):
        table.add_column(col)
    for r in results:
        for i, (c, s, shape, tap) in enumerate(zip(r.channels, r.strides, r.shapes, r.taps)):
            first = i == 0
            table.add_row(
                r.backbone if first else "",
                f"P{i + 3}",
                str(c),
                str(s),
                f"{shape[2]}×{shape[3]}",
                tap,
                f"{r.params:,}" if first else "",
                r.device if first else "",
                f"{r.seconds:.2f}" if first else "",
                end_section=i == 2,
            )
    out.print(table)


def info(
    backbone: BackboneOpt = None,
    num_classes: Annotated[int, typer.Option("--num-classes", rich_help_panel=H.MODEL,
                                             help="Number of object classes (at least 1).")] = 80,
    img_size: ImgSizeOpt = "640",
    neck_width: Annotated[
        Optional[str],
        typer.Option("--neck-width", rich_help_panel=H.MODEL,
                     help="Neck width: a multiplier of the probed channels (0.5) or 3 channels (128,256,512)."),
    ] = None,
    weights: Annotated[
        Optional[str], typer.Option("--weights", rich_help_panel=H.MODEL,
                                    help="Backbone weights to load and report on (path, URL, none).")
    ] = None,
    head: Annotated[
        Optional[str], typer.Option("--head", rich_help_panel=H.MODEL, help="Detection head: yolov5 (anchor-based) or yolov8 (anchor-free). Default: the preset's.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Parameters and GFLOPs of the assembled detector, per part, and the channels the probe measured."""
    import dataclasses

    import torch
    from rich.table import Table

    from yoloswap.cli.console import err, out, print_json
    from yoloswap.assembly import build_detector, check_head, describe_detector, parse_neck_width
    from yoloswap.backbones.resolve import resolve_backbone
    from yoloswap.backbones.probe import fit_to_size, parse_img_size

    if not backbone:
        raise typer.BadParameter("give --backbone NAME (see `yoloswap list-backbones`)", param_hint="--backbone")
    if num_classes < 1:
        raise typer.BadParameter(f"must be at least 1, got {num_classes}", param_hint="--num-classes")
    preset = resolve_backbone(backbone)
    if head is not None:
        preset = dataclasses.replace(preset, head=check_head(head))
    size = parse_img_size(img_size)
    with err.status(f"assembling {preset.name}"), torch.device("meta"):  # sizes and FLOPs need shapes only
        preset = fit_to_size(preset, size)
        model, plan = build_detector(preset, num_classes, size, parse_neck_width(neck_width))
        report = None
        if weights is not None:
            from yoloswap.backbones.weights import load_backbone_weights

            report = load_backbone_weights(model.backbone, weights, preset, min_fraction=0.0)
        summary = describe_detector(model, plan, size)
    if report is not None:
        summary["weights"] = report.to_dict()
    if as_json:
        print_json(summary)
        return
    table = Table(title=f"{preset.name} detector, {plan.head} head, {num_classes} classes, {size[0]}×{size[1]}")
    for col in ("part", "params", "GFLOPs"):
        table.add_column(col, justify="right" if col != "part" else "left")
    for part in ("backbone", "neck", "head"):
        table.add_row(part, f"{summary['parts'][part]['params']:,}", f"{summary['parts'][part]['gflops']:.2f}")
    table.add_row("[bold]total", f"[bold]{summary['params']:,}", f"[bold]{summary['gflops']:.2f}")
    out.print(table)
    out.print(
        f"backbone channels {summary['channels']} at strides {summary['strides']}; "
        f"neck out {summary['neck_channels']}, depth {summary['neck_depth']}"
    )
    if report is not None:
        out.print(report.summary_line())


def _short_weights(weights: str) -> str:
    """URLs are long: show the host's short name and the file name."""
    if weights.startswith(("http://", "https://")):
        host = weights.split("/")[2]
        label = {"download.openmmlab.com": "openmmlab", "github.com": "github"}.get(host, host)
        return f"{label}: {weights.rsplit('/', 1)[-1]}"
    return weights
