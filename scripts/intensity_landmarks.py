#!/usr/bin/env python3
"""Where each training set puts aerated lung and soft tissue on its 8-bit scale, beside where the
run-time HU mapping puts them: the measurement behind the canonical input (README, "Canonical input").
Per image: the modes of the smoothed histogram below and above its Otsu threshold (aerated lung,
soft tissue; values below 12 are outside air, 250 and above saturated); percentiles over a random sample of 150 images per set (seed 0).
Run from the repository root: python3 scripts/intensity_landmarks.py [DATA=../shared/data]."""
import glob, random, sys

import numpy as np
from PIL import Image
DATA = sys.argv[1] if len(sys.argv) > 1 else "../shared/data"
random.seed(0)
def peaks(a):
    """(aerated-lung mode, soft-tissue mode): the histogram modes below and above the Otsu
    threshold of the pixels brighter than outside air (< 12)."""
    h, _ = np.histogram(a.ravel(), bins=256, range=(0, 256))
    h = np.convolve(h, np.ones(9) / 9, mode="same")[:250]
    h[:12] = 0
    v = np.arange(250)
    w0 = np.cumsum(h); w1 = w0[-1] - w0
    m0 = np.cumsum(h * v); mu0 = m0 / np.maximum(w0, 1e-9); mu1 = (m0[-1] - m0) / np.maximum(w1, 1e-9)
    t = int(np.argmax(w0 * w1 * (mu0 - mu1) ** 2))
    return 12 + int(np.argmax(h[12:t + 1])), t + 1 + int(np.argmax(h[t + 1:]))


sets = {
 'MedSeg': sorted(glob.glob(DATA + '/medseg-covid/train/images/*')),
 'Ma et al.': sorted(glob.glob(DATA + '/majun-unlabelled/images/**/*.*', recursive=True)),
 'UCSD COVID': sorted(glob.glob(DATA + '/ucsd-covid-ct/covid/*')),
 'UCSD non-COVID': sorted(glob.glob(DATA + '/ucsd-covid-ct/non-covid/*')),
}
for k, files in sets.items():
    files = random.sample(files, min(150, len(files)))
    ps = np.array([peaks(np.array(Image.open(f).convert('L'))) for f in files])
    q = lambda i: np.percentile(ps[:, i], [10, 50, 90]).round().astype(int).tolist()
    print(f"{k:15s} n={len(files):3d} lung peak p10/50/90 {q(0)}  soft-tissue peak {q(1)}")
# HU through the thorax window W1335/L-340 and the lung window W1500/L-600
for name, w, l in [('thorax W1335/L-340', 1335, -340), ('lung W1500/L-600', 1500, -600)]:
    f = lambda hu: round(min(255, max(0, (hu - (l - w/2)) / w * 255)))
    print(f"HU through {name}: aerated lung -850 HU -> {f(-850)}, soft tissue +40 HU -> {f(40)}")
