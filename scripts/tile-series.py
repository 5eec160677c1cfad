"""Make a long DICOM series for memory benchmarks by tiling a shared one along z (never for
committing: the output holds real pixels). Each output file is a byte-level copy of an input
slice (pixel data untouched, still compressed if it was) with a new position, instance number
and SOP Instance UID, so the reader sees one series of N slices at SPACING mm.

    python3 scripts/tile-series.py SERIES_DIR N SPACING_MM OUT_DIR
"""
import glob
import os
import sys

import pydicom
from pydicom.uid import generate_uid

src, n, spacing, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
files = [f for f in glob.glob(os.path.join(src, "*")) if f.endswith(".dcm")]
slices = sorted((pydicom.dcmread(f) for f in files), key=lambda d: float(d.ImagePositionPatient[2]))
os.makedirs(out, exist_ok=True)
series_uid = generate_uid()
for i in range(n):
    d = slices[i % len(slices)]
    d.SeriesInstanceUID = series_uid
    d.SOPInstanceUID = generate_uid()
    d.file_meta.MediaStorageSOPInstanceUID = d.SOPInstanceUID
    d.InstanceNumber = i + 1
    x, y, _ = (float(v) for v in d.ImagePositionPatient)
    d.ImagePositionPatient = [x, y, round(-i * spacing, 4)]
    if "SliceLocation" in d:
        d.SliceLocation = round(-i * spacing, 4)
    if "SliceThickness" in d:
        d.SliceThickness = spacing
    d.save_as(os.path.join(out, f"{i:05d}.dcm"), enforce_file_format=True)
print(f"{n} slices in {out}")
