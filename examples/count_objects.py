"""Count the objects of each class a trained detector sees in a video (or any predict source).

    python examples/count_objects.py --weights runs/train/exp/weights/best.pt --source clip.mp4
"""

import argparse
from collections import Counter

import yoloswap

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--weights", required=True, help="a checkpoint or an exported file")
parser.add_argument("--source", required=True, help="a video, a folder of images, a webcam index or a stream")
parser.add_argument("--conf", type=float, default=0.25)
args = parser.parse_args()

det = yoloswap.load(args.weights)
per_class, frames = Counter(), 0
for result in det.predict(args.source, conf=args.conf):  # a generator: frames are never all in memory
    frames += 1
    per_class.update(result.names[c] for c in result.classes)
print(f"{frames} frames")
for name in det.names:
    print(f"{name:16s} {per_class[name]:6d} detections, {per_class[name] / max(frames, 1):.2f} per frame")
