#!/usr/bin/env python3
"""Check ctscreen's exports with the tools people use (run by scripts/test.sh).

    validate_exports.py SERIES_DIR SEG.dcm MASK.nii.gz

- `dciodvfy` (Debian dicom3tools) validates the DICOM-SEG against the Segmentation IOD: no
  line may start with "Error".
- highdicom reads it as a Segmentation: both segments with their labels, and on the slice with
  the most lesion the mask equals the exported NIfTI's there (matched through both files'
  geometry, not through array order).
- nibabel reads the NIfTI: its affine (hence orientation) equals the one the DICOM series
  defines (pydicom: positions, orientation, spacing; LPS to RAS).

Exits non-zero with a message on the first failure; prints one line per check.
"""

import subprocess
import sys
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom

SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
LABELS = ["Ground-glass opacity", "Consolidation"]


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def ok(msg):
    print(f"ok: {msg}")


def series(dir_):
    """The CT slices of the series, sorted along the slice normal."""
    ds = []
    for p in sorted(Path(dir_).rglob("*")):
        if p.is_file():
            try:
                d = pydicom.dcmread(p, stop_before_pixels=True)
            except Exception:
                continue
            if "ImagePositionPatient" in d:
                ds.append(d)
    iop = np.array(ds[0].ImageOrientationPatient, float)
    normal = np.cross(iop[:3], iop[3:])
    ds.sort(key=lambda d: float(np.dot(normal, np.array(d.ImagePositionPatient, float))))
    return ds, iop, normal


def pixel_to_lps(d, iop, rows, cols):
    """LPS mm of every pixel (row r, column c) of slice `d`: array [rows, cols, 3]."""
    ipp = np.array(d.ImagePositionPatient, float)
    dr, dc = (float(v) for v in d.PixelSpacing)  # row spacing, column spacing
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    return ipp + c[..., None] * dc * iop[:3] + r[..., None] * dr * iop[3:]


def main():
    if len(sys.argv) != 4:
        fail(__doc__)
    series_dir, seg_path, nii_path = sys.argv[1:]
    ds, iop, normal = series(series_dir)

    # 1. dciodvfy.
    out = subprocess.run(["dciodvfy", seg_path], capture_output=True, text=True)
    text = out.stdout + out.stderr
    errors = [l for l in text.splitlines() if l.startswith("Error")]
    if errors:
        fail("dciodvfy reports errors:\n" + "\n".join(errors))
    warnings = [l for l in text.splitlines() if l.startswith("Warning")]
    ok(f"dciodvfy: no errors ({len(warnings)} warnings)")

    # 2. highdicom.
    raw = pydicom.dcmread(seg_path)
    if raw.SOPClassUID != SEG_STORAGE:
        fail(f"SOP Class UID {raw.SOPClassUID}, expected {SEG_STORAGE}")
    seg = hd.seg.segread(seg_path)
    labels = [s.SegmentLabel for s in seg.SegmentSequence]
    if labels != LABELS:
        fail(f"segment labels {labels}, expected {LABELS}")
    ok(f"highdicom reads a Segmentation with segments {labels}")

    # 3. nibabel: affine from the series (LPS) to RAS.
    img = nib.load(nii_path)
    d0 = ds[0]
    dr, dc = (float(v) for v in d0.PixelSpacing)
    dz = float(np.dot(normal, np.array(ds[-1].ImagePositionPatient, float)
                      - np.array(d0.ImagePositionPatient, float))) / max(1, len(ds) - 1)
    lps = np.eye(4)
    lps[:3, 0] = iop[:3] * dc
    lps[:3, 1] = iop[3:] * dr
    lps[:3, 2] = normal * dz
    lps[:3, 3] = np.array(d0.ImagePositionPatient, float)
    want = np.diag([-1, -1, 1, 1]) @ lps
    if not np.allclose(img.affine, want, atol=1e-2):
        fail(f"NIfTI affine\n{img.affine}\ndiffers from the series'\n{want}")
    if nib.aff2axcodes(img.affine) != nib.aff2axcodes(want):
        fail("NIfTI orientation differs from the series'")
    ok(f"nibabel: affine equals the series' ({''.join(nib.aff2axcodes(img.affine))})")

    # 4. The same slice in both: the one with the most lesion in the NIfTI.
    data = np.asarray(img.dataobj).astype(np.uint8)
    inv = np.linalg.inv(img.affine)
    rows, cols = int(d0.Rows), int(d0.Columns)
    best = None
    for d in ds:
        lps_px = pixel_to_lps(d, iop, rows, cols)
        ras = lps_px * np.array([-1, -1, 1])
        ijk = np.rint(ras @ inv[:3, :3].T + inv[:3, 3]).astype(int)
        inside = np.all((ijk >= 0) & (ijk < np.array(data.shape[:3])), axis=-1)
        if not inside.all():
            fail(f"slice {d.SOPInstanceUID} falls outside the NIfTI grid")
        nii_slice = data[ijk[..., 0], ijk[..., 1], ijk[..., 2]]
        n = int((nii_slice > 0).sum())
        if best is None or n > best[0]:
            best = (n, d.SOPInstanceUID, nii_slice)
    n, uid, nii_slice = best
    px = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=[uid], segment_numbers=[1, 2], combine_segments=True,
        relabel=False)
    seg_slice = np.asarray(px)[0]
    if seg_slice.shape != nii_slice.shape:
        fail(f"SEG frame {seg_slice.shape} vs NIfTI slice {nii_slice.shape}")
    if not np.array_equal(seg_slice, nii_slice):
        diff = int((seg_slice != nii_slice).sum())
        fail(f"SEG and NIfTI differ on {diff} pixels of slice {uid}")
    ok(f"highdicom's mask equals the NIfTI's on the slice with the most lesion ({n} px, "
       f"GGO {int((nii_slice == 1).sum())}, consolidation {int((nii_slice == 2).sum())})")


if __name__ == "__main__":
    main()
