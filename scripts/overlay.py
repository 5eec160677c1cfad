"""Look at what the model calls lesion: a grid of slices of a DICOM series with the lesion mask
(`ctscreen analyze SERIES --mask-out mask.nii.gz`) drawn over them, lung window. For checking by
eye (never for committing: the pictures show real scans).

    python3 scripts/overlay.py SERIES_DIR mask.nii.gz out.png [labels.tsv]
"""
import sys, glob, os
import numpy as np, nibabel as nib, pydicom
from PIL import Image, ImageDraw

series, mask_path, out = sys.argv[1:4]
labels = {}
if len(sys.argv) > 4 and os.path.exists(sys.argv[4]):
    for line in open(sys.argv[4]).read().splitlines()[1:]:
        f = line.split("\t")
        labels[round(float(f[1]), 1)] = f[2]
files = [pydicom.dcmread(f) for f in glob.glob(os.path.join(series, "*")) if not f.endswith((".txt", ".tsv"))]
files.sort(key=lambda d: float(d.ImagePositionPatient[2]))
mask = np.asarray(nib.load(mask_path).dataobj)  # x, y, z on the input grid (z ascending position)
n = len(files)
pick = np.linspace(0, n - 1, min(n, 16)).astype(int)
tiles = []
for k in pick:
    d = files[k]
    hu = d.pixel_array.astype(np.float32) * float(d.RescaleSlope) + float(d.RescaleIntercept)
    g = np.clip((hu + 1350) / 1500 * 255, 0, 255).astype(np.uint8)
    rgb = np.stack([g, g, g], -1)
    m = mask[:, :, k].T
    rgb[m == 1] = (0.5 * rgb[m == 1] + [127, 112, 0]).astype(np.uint8)
    rgb[m == 2] = (0.5 * rgb[m == 2] + [127, 24, 24]).astype(np.uint8)
    im = Image.fromarray(rgb).resize((256, 256))
    z = round(float(d.ImagePositionPatient[2]), 1)
    ImageDraw.Draw(im).text((4, 4), f"z {z} label {labels.get(z, labels.get(round(float(getattr(d, 'SliceLocation', 1e9)), 1), '?'))}", fill=(0, 255, 0))
    tiles.append(im)
cols = 4
rows = (len(tiles) + cols - 1) // cols
sheet = Image.new("RGB", (256 * cols, 256 * rows))
for i, t in enumerate(tiles):
    sheet.paste(t, ((i % cols) * 256, (i // cols) * 256))
sheet.save(out)
print(out)
