// node --test tests/js: pure front-end helpers.
import { test } from "node:test";
import assert from "node:assert/strict";
import { coarseToFine } from "../../www/schedule.js";

test("coarse to fine covers every slice exactly once, every 8th first", () => {
  for (const nz of [1, 2, 3, 7, 8, 9, 20, 255, 600]) {
    const passes = coarseToFine(nz);
    const all = passes.flat();
    assert.equal(all.length, nz, `nz=${nz}`);
    assert.deepEqual([...all].sort((a, b) => a - b), [...Array(nz).keys()], `nz=${nz}`);
    assert.deepEqual(passes[0], [...Array(Math.ceil(nz / 8)).keys()].map((k) => 8 * k));
  }
  assert.deepEqual(coarseToFine(20), [[0, 8, 16], [4, 12], [2, 6, 10, 14, 18], [1, 3, 5, 7, 9, 11, 13, 15, 17, 19]]);
});

test("an empty volume has no passes", () => {
  assert.deepEqual(coarseToFine(0), []);
});

test("the first pass has about 10 slices at any length, and every step covers each slice once", async () => {
  const { firstStep } = await import("../../www/schedule.js");
  assert.equal(firstStep(1), 1);
  assert.equal(firstStep(20), 2);
  assert.equal(firstStep(255), 32);
  assert.equal(firstStep(600), 64);
  for (const nz of [1, 5, 20, 31, 255, 600, 1200]) {
    const passes = coarseToFine(nz, firstStep(nz));
    assert.ok(passes[0].length <= 10 || firstStep(nz) === 64, `nz=${nz}: first pass ${passes[0].length}`);
    assert.deepEqual(passes.flat().sort((a, b) => a - b), [...Array(nz).keys()], `nz=${nz}`);
  }
});
