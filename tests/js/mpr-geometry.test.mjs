// The viewer's voxel ↔ world mapping: the crosshair must land on the same voxel in every pane.
import assert from "node:assert/strict";
import test from "node:test";
import { clampVoxel, rasToVoxel, voxelToRas } from "../../www/mpr-geometry.js";

// An oblique-free CT affine (LPS): 0.7 mm in-plane, 2.5 mm slices, origin off centre.
const ct = [[0.7, 0, 0, -180], [0, 0.7, 0, -150], [0, 0, 2.5, -300]];
// A tilted one (gantry tilt folded into the z column) and a flipped one.
const tilted = [[0.7, 0, 0, -180], [0, 0.7, 0.44, -150], [0, 0, 2.46, -300]];
const flipped = [[-0.8, 0, 0, 200], [0, 0.8, 0, -150], [0, 0, -1.25, 40]];

test("voxel → RAS flips x and y of LPS", () => {
  assert.deepEqual(voxelToRas(ct, [0, 0, 0]), [180, 150, -300]);
  const p = voxelToRas(ct, [10, 20, 4]);
  assert.ok(Math.abs(p[0] - (180 - 7)) < 1e-9 && Math.abs(p[1] - (150 - 14)) < 1e-9 && Math.abs(p[2] - (-290)) < 1e-9);
});

test("RAS → voxel inverts it, tilted and flipped included", () => {
  for (const a of [ct, tilted, flipped]) {
    for (const v of [[0, 0, 0], [255.5, 12, 3], [511, 511, 599]]) {
      const back = rasToVoxel(a, voxelToRas(a, v));
      back.forEach((c, i) => assert.ok(Math.abs(c - v[i]) < 1e-6, `${a} ${v} → ${back}`));
    }
  }
});

test("a singular affine gives no voxel rather than NaN", () => {
  assert.equal(rasToVoxel([[0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]], [1, 2, 3]), null);
});

test("clampVoxel rounds into the volume", () => {
  assert.deepEqual(clampVoxel([-3.2, 4.6, 700], [512, 512, 600]), [0, 5, 599]);
});
