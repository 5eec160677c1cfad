// node --test tests/js: the follow-up view's geometry and table.
import { test } from "node:test";
import assert from "node:assert/strict";
import { baselineZ, changeRows, followupZ, keyLevel, levelRange, nearestSlice, spacingOf } from "../../www/compare-view.js";

// A0002's geometry in file order (30 slices, 8 mm, 312 mm at z = 0 down to 80 mm: positions
// falling with z, as a viewer may hold them); the follow-up is the same scan without its 3
// lowest slices.
const base = Array.from({ length: 30 }, (_, z) => 312 - 8 * z);
const fu = base.slice(0, 27);
// As `compare` finds it: origins at each scan's lowest slice, the cut's 24 mm higher.
const alignment = { z_offset_mm: -24, origin_mm: { baseline: 80, followup: 104 } };

test("a cut copy maps every level to the same patient z and slice", () => {
  for (let z = 0; z < 27; z++) {
    const q = followupZ(alignment, base[z]);
    assert.equal(q, base[z]);
    assert.equal(nearestSlice(fu, q), z);
    assert.equal(baselineZ(alignment, q), base[z]);
  }
  // The 3 lowest baseline slices have no counterpart in the cut.
  for (const z of [27, 28, 29]) assert.equal(nearestSlice(fu, followupZ(alignment, base[z])), null);
});

test("a shifted follow-up (another table position) maps by the offset", () => {
  // Same anatomy 100 mm higher in the follow-up's patient coordinates.
  const shifted = base.map((p) => p + 100);
  const a = { z_offset_mm: 0, origin_mm: { baseline: 80, followup: 180 } };
  assert.equal(nearestSlice(shifted, followupZ(a, 200)), base.indexOf(200));
  // Half a slice off still finds the nearest; beyond the scan's ends it does not.
  assert.equal(nearestSlice(base, 203.9), base.indexOf(200));
  assert.equal(nearestSlice(base, 312 + 4.5), null);
  assert.equal(nearestSlice(base, null), null);
});

test("levels span both scans at the finer spacing; no alignment, no levels", () => {
  const thin = Array.from({ length: 97 }, (_, z) => 96 + 2.5 * z); // 2.5 mm, ascending
  const a = { z_offset_mm: 0, origin_mm: { baseline: 80, followup: 96 } };
  assert.deepEqual(levelRange(a, base, thin), { lo: 80, hi: 320, step: 2.5 });
  assert.equal(spacingOf([null, 5, 10, 15]), 5);
  assert.equal(spacingOf([7]), null);
  assert.equal(levelRange({ z_offset_mm: null, origin_mm: null }, base, fu), null);
});

test("the key level is where either scan has the most lesion", () => {
  const cmp = {
    alignment,
    profiles: { aligned: true, baseline: [[0, 1], [8, 12.5], [16, 3]], followup: [[8, 4], [16, 20]] },
  };
  assert.equal(keyLevel(cmp), 80 + 16);
  assert.equal(keyLevel({ ...cmp, alignment: { z_offset_mm: null, origin_mm: null } }), null);
});

test("the change table says baseline, follow-up and change, n/a where unknown", () => {
  const inv = (t) => ({ left: t, right: t, total: t });
  const cmp = {
    dates: { baseline: "2020-03-01", followup: null }, interval_days: null,
    change: {
      lung_ml_values: { baseline: { left: 2000, right: 2200, total: 4200 }, followup: { left: 2100, right: 2300, total: 4400 } },
      lung_ml: { left: 100, right: 100, total: 200 },
      involvement_pct: { baseline: inv(10), followup: inv(4) },
      involvement_pct_points: inv(-6),
      lesion_ml_values: { baseline: { ggo: 300, consolidation: 10, total: 310 }, followup: { ggo: 110, consolidation: 8, total: 118 } },
      lesion_ml: { ggo: -190, consolidation: -2, total: -192 },
      lesion_ml_pct: { ggo: -63.3, consolidation: -20, total: -61.9 },
      severity: { baseline: "CT-1", followup: "CT-1" },
      call_summary: { baseline: "a", followup: "b" },
      p_covid: { baseline: 0.9, followup: null },
    },
  };
  const rows = changeRows(cmp);
  const row = (name) => rows.find((r) => r[0] === name);
  assert.deepEqual(row("Study date"), ["Study date", "2020-03-01", "unknown", "interval unknown"]);
  assert.deepEqual(row("Lesions total (mL)"), ["Lesions total (mL)", "310.0", "118.0", "−192.0 mL (−62 %)"]);
  assert.deepEqual(row("Involvement total (% of lung)"), ["Involvement total (% of lung)", "10.0", "4.0", "−6.0 points"]);
  assert.deepEqual(row("Lung volume (mL)"), ["Lung volume (mL)", "4200", "4400", "+200"]);
  assert.deepEqual(row("p(COVID-19) of the call"), ["p(COVID-19) of the call", "0.90", "n/a", "n/a"]);
  assert.ok(rows.every((r) => r.length === 4 && r.every((c) => typeof c === "string")));
  // No severity (no lung) in one scan: no change to state.
  const noLung = changeRows({ ...cmp, change: { ...cmp.change, severity: { baseline: "n/a", followup: "CT-1" } } });
  assert.equal(noLung.find((r) => r[0] === "Severity")[3], "n/a");
  assert.equal(row("Severity")[3], "same");
  // A change that rounds to nothing carries no sign.
  const tiny = changeRows({ ...cmp, change: { ...cmp.change, involvement_pct_points: inv(-0.03) } });
  assert.equal(tiny.find((r) => r[0] === "Involvement total (% of lung)")[3], "0.0 points");
});
