"""Use a yoloswap detector in your own training loop: build, the head's criterion, a few steps.

    python examples/own_loop.py --backbone mobilenetv3-small --steps 20
"""

import argparse

import torch

import yoloswap

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--backbone", default="mobilenetv3-small")
parser.add_argument("--steps", type=int, default=20)
parser.add_argument("--img-size", type=int, default=256)
args = parser.parse_args()

size = args.img_size
model = yoloswap.build(args.backbone, num_classes=3, img_size=size)  # neck and head sized by the probe
criterion = model.head.make_loss(size)  # the head's own loss; its items are named by criterion.names
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
torch.manual_seed(0)
images = torch.rand(2, 3, size, size)  # 0-1 RGB
targets = torch.tensor([[0, 1, size / 2, size / 2, size / 5, size / 4],  # image, class, cx, cy, w, h (pixels)
                        [1, 2, size / 3, size / 3, size / 6, size / 6]])
model.train()
for step in range(args.steps):
    loss, items = criterion(model(images), targets)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    print(f"step {step}: loss {loss.item():.4f} ({', '.join(f'{n} {v:.4f}' for n, v in zip(criterion.names, items.tolist()))})")
model.eval()
with torch.no_grad():
    rows = model.infer(images)  # (B, P, 4 + classes): x1, y1, x2, y2 and class scores, before NMS
print("decoded rows:", tuple(rows.shape))
