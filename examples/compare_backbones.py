"""Train two backbones on your data with the same budget and print which detects better.

    python examples/compare_backbones.py --data my_data.yaml --epochs 30 --img-size 320
"""

import argparse

import yoloswap

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--data", default=None, help="data YAML or folder (default: the built-in set)")
parser.add_argument("--backbones", default="yolov5n,mobilenetv3-small")
parser.add_argument("--epochs", type=int, default=30)
parser.add_argument("--img-size", type=int, default=320)
parser.add_argument("--out", default="runs/examples/compare")
args = parser.parse_args()

results = {}
for backbone in args.backbones.split(","):
    run = yoloswap.train(backbone, data=args.data, epochs=args.epochs, img_size=args.img_size, weights="none",
                         out=f"{args.out}/{backbone}", exist_ok=True, verbose=False)
    results[backbone] = run
    print(f"{backbone:24s} mAP@.5 {run.metrics['map50']:.3f}  mAP@.5:.95 {run.metrics['map']:.3f}  {run.best}")
best = max(results, key=lambda b: results[b].metrics["map50"])
print(f"best: {best}")
