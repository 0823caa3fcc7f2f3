"""yoloswap reads checkpoints made by the real ``yolov5`` package (models.yolo.Model pickles), outputs equal.

Run in a bench venv that has the ``yolov5`` package (never a product dependency), with this checkout on the path:

    PYTHONPATH=. /work/benchvenv/bin/python bench/yolov5_package_check.py

For yolov5n and yolov5s: the package builds its own ``yolov5{n,s}.yaml`` (80 classes, random weights, BatchNorm
statistics randomised so a wrong BatchNorm mapping shows), saves it as its train.py does (the whole model pickled
in half precision), yoloswap reads the file through its restricted unpickler (no class code runs) and both decode
the same 320 px input; boxes as x1, y1, x2, y2 and scores as objectness × class. Prints the largest differences.
"""
import sys, torch
from pathlib import Path
import yolov5
from yolov5.models.yolo import Model
torch.manual_seed(0)
for scale in ("n", "s"):
    m = Model(str(Path(yolov5.__file__).parent / "models" / f"yolov5{scale}.yaml"), nc=80)
    g = torch.Generator().manual_seed(1)
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.copy_(torch.randn(mod.num_features, generator=g) * 0.1)
            mod.running_var.copy_(torch.rand(mod.num_features, generator=g) + 0.5)
    m.eval()
    path = Path(f"yolov5{scale}.pt")
    import copy
    torch.save({"epoch": -1, "model": copy.deepcopy(m).half(), "ema": None, "updates": None, "optimizer": None}, path)
    x = torch.rand(1, 3, 320, 320)
    from yoloswap.foreign_detector import read_detector_file
    from yoloswap.assembly import detector_from_checkpoint
    ckpt = read_detector_file(path)
    model, preset, plan, names, _ = detector_from_checkpoint(ckpt, path)
    model.eval()
    with torch.no_grad():
        raw = model.float()(x)
        rows = model.head.decode(raw)  # (1, N, 4 + nc) xyxy, scores
    # the package's own decode ((1, N, 85): cx, cy, w, h, obj, classes) of its weights as the file holds them (fp16),
    # in yoloswap's row form: x1, y1, x2, y2 and objectness x class
    m16 = copy.deepcopy(m).half().float().eval()
    with torch.no_grad():
        r16 = m16(x)[0]
    cx, cy, w, h = r16[..., 0], r16[..., 1], r16[..., 2], r16[..., 3]
    ref16 = torch.cat([torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1), r16[..., 5:] * r16[..., 4:5]], -1)
    print(scale, "names", len(names), "head", plan.head if hasattr(plan, "head") else "?", rows.shape, ref16.shape,
          "max|d| boxes", (rows[..., :4] - ref16[..., :4]).abs().max().item(),
          "scores", (rows[..., 4:] - ref16[..., 4:]).abs().max().item(), "tensors", ckpt["origin"]["tensors"])
