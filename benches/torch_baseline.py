#!/usr/bin/env python3
"""The ctscreen network in PyTorch on the CPU: the baseline a researcher would reach for.

Builds the architecture of `src/model/` from a ctscreen `config.json` (v1's U-Net encoder or v2's
EfficientNet-lite0; same layers, widths, GroupNorm, pooling and heads; the parameter count is
printed so that it can be checked against ctscreen's), and times what `ctscreen bench` times: inference at batch 1 and 8 with and without
the reconstruction decoder, and one training step (forward + backward + Adam) at batch 4.

Weights are random: speed does not depend on their values.

Usage: python3 benches/torch_baseline.py [--config models/ctscreen-v1/config.json] [--reps 5]
       [--threads N] [--json]

If `torch` is missing, the script installs it from PyPI into a virtual environment
(`$CTSCREEN_TORCH_VENV`, default `~/.cache/ctscreen/torch-venv`) and re-runs itself there.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def ensure_torch():
    try:
        import torch  # noqa: F401
        return
    except ImportError:
        pass
    venv = Path(os.environ.get("CTSCREEN_TORCH_VENV", Path.home() / ".cache/ctscreen/torch-venv"))
    py = venv / "bin" / "python"
    # Inside the venv already? Decided by sys.prefix: the venv's python is often a link to the
    # very interpreter running now, so comparing resolved executables says "yes" from outside.
    if venv.exists() and Path(sys.prefix).resolve() == venv.resolve():
        sys.exit("torch_baseline: torch is still missing inside " + str(venv))
    if not py.exists():
        print(f"torch_baseline: installing torch into {venv} (one time, several GB)", file=sys.stderr)
        subprocess.check_call([sys.executable, "-m", "venv", str(venv)])
    has_torch = subprocess.call([str(py), "-c", "import torch, numpy"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0
    if not has_torch:
        subprocess.check_call([str(py), "-m", "pip", "install", "--quiet", "torch", "numpy"],
                              stdout=sys.stderr)
    os.execv(str(py), [str(py), __file__, *sys.argv[1:]])


ensure_torch()

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def groups_for(channels, wanted):
    g = max(1, min(wanted, channels))
    while channels % g:
        g -= 1
    return g


class ResBlock(nn.Module):
    """(3×3 conv → GroupNorm → ReLU) ×2 plus a 1×1 projection when the width changes."""

    def __init__(self, c_in, c_out, groups):
        super().__init__()
        g = groups_for(c_out, groups)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(g, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.norm2 = nn.GroupNorm(g, c_out)
        self.skip = nn.Conv2d(c_in, c_out, 1, bias=False) if c_in != c_out else None

    def forward(self, x):
        identity = self.skip(x) if self.skip is not None else x
        y = F.relu(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(y))
        return F.relu(y + identity)


# EfficientNet-lite0 (v2's encoder, src/model/effnet.rs): (kernel, stride of the first block,
# expansion, input width, output width, blocks) per stage; skips after blocks 0, 2, 4, 10, 15.
LITE0_STAGES = [(3, 1, 1, 32, 16, 1), (3, 2, 6, 16, 24, 2), (5, 2, 6, 24, 40, 2),
                (3, 2, 6, 40, 80, 3), (5, 1, 6, 80, 112, 3), (5, 2, 6, 112, 192, 4),
                (3, 1, 6, 192, 320, 1)]
SKIP_AFTER = (0, 2, 4, 10, 15)
SKIP_WIDTHS = (16, 24, 40, 112, 320)


class ConvAffine(nn.Module):
    """Bias-free convolution with TensorFlow "SAME" padding, then the frozen BatchNorm as a
    per-channel scale and shift (what ctscreen runs; BatchNorm in eval mode costs the same)."""

    def __init__(self, c_in, c_out, k, stride, groups):
        super().__init__()
        self.k, self.stride = k, stride
        self.conv = nn.Conv2d(c_in, c_out, k, stride=stride, groups=groups, bias=False)
        self.scale = nn.Parameter(torch.ones(1, c_out, 1, 1))
        self.shift = nn.Parameter(torch.zeros(1, c_out, 1, 1))

    def forward(self, x):
        h, w = x.shape[-2:]
        pad = lambda n: max((-(-n // self.stride) - 1) * self.stride + self.k - n, 0)  # noqa: E731
        ph, pw = pad(h), pad(w)
        x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        return self.conv(x) * self.scale + self.shift


class MBConv(nn.Module):
    def __init__(self, k, stride, expand, c_in, c_out):
        super().__init__()
        hid = c_in * expand
        self.expand = ConvAffine(c_in, hid, 1, 1, 1) if expand != 1 else None
        self.depthwise = ConvAffine(hid, hid, k, stride, hid)
        self.project = ConvAffine(hid, c_out, 1, 1, 1)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x):
        h = F.relu6(self.expand(x)) if self.expand is not None else x
        h = self.project(F.relu6(self.depthwise(h)))
        return h + x if self.residual else h


class EffNetLite0(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = ConvAffine(1, 32, 3, 2, 1)
        blocks = []
        for k, s, e, ci, co, n in LITE0_STAGES:
            for r in range(n):
                blocks.append(MBConv(k, s if r == 0 else 1, e, ci if r == 0 else co, co))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x):
        h = F.relu6(self.stem(x * (255.0 / 128.0) - 127.0 / 128.0))
        skips = []
        for i, b in enumerate(self.blocks):
            h = b(h)
            if i in SKIP_AFTER:
                skips.append(h)
        return skips


class MultiTask(nn.Module):
    """Shared encoder (v1's residual levels, or v2's EfficientNet-lite0 whose five feature maps and
    the image itself are the skips); U-Net segmentation decoder; skip-free reconstruction decoder;
    MLP on average + max pooled bottleneck features. Widths as `MultiTaskConfig` in Rust."""

    def __init__(self, c):
        super().__init__()
        g = c["norm_groups"]
        self.effnet = c.get("encoder") == "effnet-lite0"
        if self.effnet:
            L = len(SKIP_WIDTHS) + 1
            w = lambda k: SKIP_WIDTHS[max(k, 1) - 1]  # noqa: E731
            skip = lambda k: 1 if k == 0 else SKIP_WIDTHS[k - 1]  # noqa: E731
            self.encoder = EffNetLite0()
        else:
            L, w0 = c["levels"], c["base_width"]
            w = skip = lambda k: w0 << k  # noqa: E731
            self.encoder = nn.ModuleList(ResBlock(1 if k == 0 else w(k - 1), w(k), g) for k in range(L))
        rw = lambda k: max(w(k) // c["recon_divisor"], 4)  # noqa: E731
        self.seg_up = nn.ModuleList(nn.ConvTranspose2d(w(k + 1), w(k), 2, stride=2) for k in range(L - 1))
        self.seg_blocks = nn.ModuleList(ResBlock(w(k) + skip(k), w(k), g) for k in range(L - 1))
        self.seg_out = nn.Conv2d(w(0), c["seg_classes"], 1)
        self.rec_up = nn.ModuleList(
            nn.ConvTranspose2d(w(L - 1) if k == L - 2 else rw(k + 1), rw(k), 2, stride=2)
            for k in range(L - 1))
        self.rec_blocks = nn.ModuleList(ResBlock(rw(k), rw(k), g) for k in range(L - 1))
        self.rec_out = nn.Conv2d(rw(0), 1, 1)
        self.cls_hidden = nn.Linear(2 * w(L - 1), c["cls_hidden"])
        self.cls_dropout = nn.Dropout(c["dropout"])
        self.cls_out = nn.Linear(c["cls_hidden"], c["n_classes"])

    def encode(self, x):
        """The skips, level k at stride 2^k; the last is the bottleneck."""
        if self.effnet:
            return [x] + self.encoder(x)
        skips, h = [], x
        for k, block in enumerate(self.encoder):
            h = block(F.max_pool2d(h, 2) if k > 0 else h)
            skips.append(h)
        return skips

    def forward(self, x, with_recon=True):
        skips = self.encode(x)
        b = skips.pop()
        s = b
        for k in reversed(range(len(self.seg_up))):
            s = self.seg_blocks[k](torch.cat([self.seg_up[k](s), skips[k]], 1))
        seg = self.seg_out(s)
        rec = None
        if with_recon:
            r = b
            for k in reversed(range(len(self.rec_up))):
                r = self.rec_blocks[k](self.rec_up[k](r))
            rec = torch.sigmoid(self.rec_out(r))
        feat = torch.cat([b.mean((2, 3)), b.amax((2, 3))], 1)
        cls = self.cls_out(self.cls_dropout(F.relu(self.cls_hidden(feat))))
        return seg, cls, rec


def time_it(reps, f):
    f()  # warm-up
    t = time.perf_counter()
    for _ in range(reps):
        f()
    return (time.perf_counter() - t) / max(reps, 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="models/ctscreen-v1/config.json")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads (default: torch's own choice)")
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    shipped = json.loads(Path(a.config).read_text())
    cfg, size = shipped["model"], shipped.get("input_size", 256)
    torch.manual_seed(0)
    model = MultiTask(cfg).eval()
    params = sum(p.numel() for p in model.parameters())
    x1 = torch.rand(1, 1, size, size)
    results = []
    with torch.inference_mode():
        for batch in (1, 8):
            x = x1.expand(batch, 1, size, size).contiguous()
            for recon in (False, True):
                secs = time_it(a.reps, lambda: model(x, recon))
                results.append({"batch": batch, "recon": recon, "ms_per_slice": secs / batch * 1e3})
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xb = torch.full((4, 1, size, size), 0.5)

    def step():
        seg, cls, rec = model(xb, True)
        loss = seg.mean() + cls.mean() + rec.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss.item()

    results.append({"train_step_batch4_ms": time_it(min(a.reps, 3), step) * 1e3})
    out = {"framework": f"torch {torch.__version__}", "threads": torch.get_num_threads(),
           "params": params, "size": size, "results": results}
    if a.json:
        print(json.dumps(out))
    else:
        print(f"PyTorch {torch.__version__} CPU, {out['threads']} threads, {params:,} parameters")
        for r in results:
            if "batch" in r:
                print(f"inference {size}² batch {r['batch']} recon {str(r['recon']).lower():5}: "
                      f"{r['ms_per_slice']:8.1f} ms/slice")
            else:
                print(f"training step {size}² batch 4 (forward+backward+Adam): "
                      f"{r['train_step_batch4_ms']:8.1f} ms")


if __name__ == "__main__":
    main()
