// Pure geometry for the multiplanar viewer: the scan's canonical voxels ↔ NiiVue's world (RAS mm).
// `affine` is the scan's canonical voxel index → patient LPS mm, rows x, y, z, as the worker
// reports it (VolumeView.affine).

/** Canonical voxel (x, y, z; fractional allowed) → RAS mm. */
export function voxelToRas(affine, [i, j, k]) {
  const lps = affine.map((r) => r[0] * i + r[1] * j + r[2] * k + r[3]);
  return [-lps[0], -lps[1], lps[2]];
}

/** RAS mm → canonical voxel (fractional), or null when the affine cannot be inverted. */
export function rasToVoxel(affine, [r, a, s]) {
  const b = [-r - affine[0][3], -a - affine[1][3], s - affine[2][3]];
  const m = affine.map((row) => row.slice(0, 3));
  const det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
    - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
    + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
  if (!Number.isFinite(det) || Math.abs(det) < 1e-12) return null;
  // Cramer's rule: column c of m replaced by b.
  const solve = (c) => {
    const n = m.map((row, i) => row.map((v, j) => (j === c ? b[i] : v)));
    return (n[0][0] * (n[1][1] * n[2][2] - n[1][2] * n[2][1])
      - n[0][1] * (n[1][0] * n[2][2] - n[1][2] * n[2][0])
      + n[0][2] * (n[1][0] * n[2][1] - n[1][1] * n[2][0])) / det;
  };
  return [solve(0), solve(1), solve(2)];
}

/** The voxel nearest `v` inside dims [nx, ny, nz]. */
export function clampVoxel(v, dims) {
  return v.map((c, i) => Math.max(0, Math.min(dims[i] - 1, Math.round(c))));
}
