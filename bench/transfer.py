"""Transfer benchmark (issue 22): does a pretrained backbone make detection learn faster? No internet needed.

For each family (a ResNet with BatchNorm, a ConvNeXt with LayerNorm and layer scale, a MobileNetV3 with depthwise
convolutions and BatchNorm):

1. pretrain the backbone for ``--pretrain-s`` seconds on a generated *classification* proxy: six texture classes
   (horizontal, vertical and diagonal stripes, checkerboards, dot grids, concentric rings) with random frequency,
   phase, colours and noise: not the detection set's shapes. Held-out accuracy is measured on 300 new images;
2. save it the way such files arrive: ResNet as a torchvision-style ``.pth`` (a bare state dict), ConvNeXt as timm
   ``safetensors``, MobileNetV3 as a DDP-wrapped training checkpoint (``{"epoch", "state_dict": {"module.…"}}``);
3. train detection on the built-in set with ``--weights FILE`` and with ``--weights none``, same command and budget
   (``--detect-min`` minutes, ``--img-size``), plus any ``--knob`` variants given (extra train flags on the
   pretrained run), and read mAP@.5:.95 per epoch from each run's metrics.csv.

Prints a markdown table (and writes ``OUT/transfer.json``): final mAP both ways, the ratio, the first epoch at
which each passes ``--threshold``, and the proxy accuracy. Speed depends on the machine and on what else runs on
it; say so next to any figure.

    python bench/transfer.py --pretrain-s 60 --detect-min 1.5 --out /tmp/transfer
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from yoloswap.backbones.resolve import resolve_backbone
from yoloswap.backbones.sources import build_backbone
from yoloswap.reports.plots import read_metrics_csv

FAMILIES = {  # backbone spec → how its pretrained file is saved
    "torchvision:resnet18": "torchvision-pth",
    "timm:convnext_atto": "timm-safetensors",
    "timm:mobilenetv3_small_050": "ddp-checkpoint",
}
N_CLASSES = 6


def texture(rng: np.random.Generator, cls: int, size: int) -> np.ndarray:
    """One proxy image of texture class ``cls``: (size, size, 3) float in [0, 1]."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    freq, phase = rng.uniform(3, 9), rng.uniform(0, 2 * math.pi)
    if cls == 0:
        wave = np.sin(2 * math.pi * freq * yy + phase)
    elif cls == 1:
        wave = np.sin(2 * math.pi * freq * xx + phase)
    elif cls == 2:
        wave = np.sin(2 * math.pi * freq * (xx + yy) / 1.4 + phase)
    elif cls == 3:
        wave = np.sign(np.sin(2 * math.pi * freq * xx + phase) * np.sin(2 * math.pi * freq * yy + phase))
    elif cls == 4:
        wave = (np.sin(2 * math.pi * freq * xx + phase) * np.sin(2 * math.pi * freq * yy + phase) > 0.6) * 2.0 - 1
    else:
        cx, cy = rng.uniform(0.2, 0.8, 2)
        wave = np.sin(2 * math.pi * freq * np.hypot(xx - cx, yy - cy) + phase)
    a, b = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
    img = a + (b - a) * ((wave[..., None] + 1) / 2)
    return np.clip(img + rng.normal(0, 0.08, img.shape), 0, 1).astype(np.float32)


def batch(rng: np.random.Generator, n: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    labels = rng.integers(0, N_CLASSES, n)
    x = np.stack([texture(rng, int(c), size) for c in labels]).transpose(0, 3, 1, 2)
    mean, std = np.array([0.485, 0.456, 0.406])[:, None, None], np.array([0.229, 0.224, 0.225])[:, None, None]
    return torch.from_numpy(((x - mean) / std).astype(np.float32)), torch.from_numpy(labels)


class Classifier(nn.Module):
    """The detection backbone (same adapter, same key names) + global pooling of its last level + a linear layer."""

    def __init__(self, spec: str, size: int) -> None:
        super().__init__()
        self.backbone = build_backbone(resolve_backbone(spec))
        with torch.no_grad():
            channels = self.backbone(torch.zeros(1, 3, size, size))[-1].shape[1]
        self.fc = nn.Linear(channels, N_CLASSES)

    def forward(self, x):
        return self.fc(self.backbone(x)[-1].mean((2, 3)))


def pretrain(spec: str, seconds: float, size: int, seed: int) -> tuple[nn.Module, float, int]:
    """Train for ``seconds`` of wall clock; returns (backbone body, held-out accuracy, steps)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = Classifier(spec, size)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
    start, steps = time.perf_counter(), 0
    model.train()
    while time.perf_counter() - start < seconds:
        x, y = batch(rng, 32, size)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
    model.eval()
    held = np.random.default_rng(10_000 + seed)
    correct = 0
    with torch.no_grad():
        for _ in range(10):
            x, y = batch(held, 30, size)
            correct += int((model(x).argmax(1) == y).sum())
    return model.backbone.body, correct / 300, steps


def save(body: nn.Module, how: str, out: Path) -> Path:
    state = {k: v.detach().contiguous() for k, v in body.state_dict().items()}
    if how == "torchvision-pth":
        path = out / "resnet18-proxy.pth"
        torch.save(state, path)
    elif how == "timm-safetensors":
        from safetensors.torch import save_file

        path = out / "convnext_atto-proxy.safetensors"
        save_file(state, path)
    else:
        path = out / "mobilenetv3-proxy-ddp.pt"
        torch.save({"epoch": 1, "state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    return path


def detect(spec: str, weights: str, out: Path, budget: list[str], img_size: int, extra: list[str]) -> dict:
    """One `yoloswap train` run on the built-in set; mAP@.5:.95 per epoch from its metrics.csv."""
    cmd = [sys.executable, "-m", "yoloswap", "train", "--backbone", spec, "--weights", weights, *budget,
           "--img-size", str(img_size), "--out", str(out), "--exist-ok", *extra]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    epochs, cols = read_metrics_csv(out / "metrics.csv")
    key = next((k for k in cols if k.lower().endswith("map50-95")), None)
    if key is None:
        raise SystemExit(f"{out / 'metrics.csv'}: no mAP50-95 column (columns: {', '.join(cols)})")
    maps = [v for v in cols[key] if v == v]
    return {"cmd": " ".join(cmd[2:]), "map": maps[-1] if maps else 0.0, "best": max(maps, default=0.0),
            "per_epoch": maps, "epochs": len(epochs)}


def first_passing(maps: list[float], threshold: float) -> str:
    return next((str(i + 1) for i, m in enumerate(maps) if m >= threshold), "never")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pretrain-s", type=float, default=60.0)
    ap.add_argument("--detect-min", type=float, default=1.5)
    ap.add_argument("--detect-epochs", type=int, default=None,
                    help="a budget of epochs instead of minutes: the same steps for every run, whatever else the "
                         "machine is doing (so families can run side by side, one per core)")
    ap.add_argument("--img-size", type=int, default=128)
    ap.add_argument("--proxy-size", type=int, default=64)
    ap.add_argument("--threshold", type=float, default=0.01, help="mAP@.5:.95 an epoch must reach to 'pass'")
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--knob", action="append", default=[], help="extra train flags for a pretrained variant, "
                    "e.g. --knob '--layer-decay 0.8' (repeatable)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/yoloswap-transfer"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    budget = ["--epochs", str(args.detect_epochs)] if args.detect_epochs else ["--time", str(args.detect_min)]
    results = []
    for spec in args.families.split(","):
        body, acc, steps = pretrain(spec, args.pretrain_s, args.proxy_size, seed=0)
        path = save(body, FAMILIES[spec], args.out)
        name = spec.split(":")[1]
        runs = {"scratch": detect(spec, "none", args.out / f"{name}-scratch", budget, args.img_size, []),
                "pretrained": detect(spec, str(path), args.out / f"{name}-pre", budget, args.img_size, [])}
        for i, knob in enumerate(args.knob):
            runs[knob] = detect(spec, str(path), args.out / f"{name}-knob{i}", budget, args.img_size, knob.split())
        results.append({"backbone": spec, "file": FAMILIES[spec], "proxy_acc": acc, "proxy_steps": steps,
                        "runs": runs})
        (args.out / "transfer.json").write_text(json.dumps(results, indent=1))
    print(f"\npretrain {args.pretrain_s:g} s, detection {' '.join(budget)} at {args.img_size} px, "
          f"threshold mAP@.5:.95 {args.threshold:g}\n")
    print("| backbone | file | proxy acc (steps) | run | mAP@.5:.95 | best | × scratch | epochs | first ≥ thr |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        base = r["runs"]["scratch"]["best"]
        for label, run in r["runs"].items():
            ratio = f"{run['best'] / base:.1f}×" if base > 0 else "-"
            print(f"| `{r['backbone']}` | {r['file']} | {r['proxy_acc']:.0%} ({r['proxy_steps']}) | {label} | "
                  f"{run['map']:.4f} | {run['best']:.4f} | {ratio} | {run['epochs']} | "
                  f"{first_passing(run['per_epoch'], args.threshold)} |")


if __name__ == "__main__":
    main()
