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
