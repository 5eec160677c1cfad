// The follow-up view's geometry and drawing, pure (node tests it): levels along z, the slice
// of each scan at a level, the key level, the lesion-share plot, the change table's rows.
//
// A *level* is a patient z (mm) in the baseline's frame. The comparison (src/compare.rs) says
// how the follow-up sits against it: baseline patient z `p` is follow-up patient z
// `p - origin.baseline + z_offset_mm + origin.followup`.

/** The follow-up's patient z (mm) at baseline patient z `p`, or null when not aligned. */
export function followupZ(alignment, p) {
  if (alignment?.z_offset_mm == null || !alignment.origin_mm) return null;
  const o = alignment.origin_mm;
  return p - o.baseline + alignment.z_offset_mm + o.followup;
}

/** The baseline's patient z at follow-up patient z `q` (the inverse of `followupZ`). */
export function baselineZ(alignment, q) {
  if (alignment?.z_offset_mm == null || !alignment.origin_mm) return null;
  const o = alignment.origin_mm;
  return q - o.followup - alignment.z_offset_mm + o.baseline;
}

/** Slice spacing along z (mm) from slice positions: the median gap, or null. */
export function spacingOf(positions) {
  const p = positions.filter((v) => v != null).sort((a, b) => a - b);
  const gaps = [];
  for (let i = 1; i < p.length; i++) gaps.push(p[i] - p[i - 1]);
  if (!gaps.length) return null;
  gaps.sort((a, b) => a - b);
  return gaps[Math.floor(gaps.length / 2)];
}

/**
 * The slice whose position is nearest patient z `p`, or null when `p` lies outside the scan by
 * more than half a slice (that level is not in this scan).
 */
export function nearestSlice(positions, p) {
  if (p == null) return null;
  let best = null, dist = Infinity;
  positions.forEach((v, z) => {
    if (v == null) return;
    const d = Math.abs(v - p);
    if (d < dist) { dist = d; best = z; }
  });
  const half = (spacingOf(positions) ?? 0) / 2 + 1e-3;
  return best !== null && dist <= half ? best : null;
}

/**
 * The levels one can scroll through: from the lowest to the highest slice of either scan (in
 * the baseline's frame), one step = the finer of the two slice spacings.
 */
export function levelRange(alignment, basePositions, fuPositions) {
  const b = basePositions.filter((v) => v != null);
  const f = fuPositions.filter((v) => v != null).map((q) => baselineZ(alignment, q));
  if (!b.length || !f.length || f[0] == null) return null;
  const all = [...b, ...f];
  const steps = [spacingOf(basePositions), spacingOf(fuPositions)].filter((s) => s > 0);
  return { lo: Math.min(...all), hi: Math.max(...all), step: steps.length ? Math.min(...steps) : 1 };
}

/**
 * The key level (baseline patient z): where either scan shows the largest lesion share of the
 * lung, from the comparison's profiles (positions in mm above the baseline's lowest slice).
 */
export function keyLevel(cmp) {
  const o = cmp.alignment.origin_mm;
  if (!o) return null;
  let best = null;
  for (const [t, share] of [...cmp.profiles.baseline, ...cmp.profiles.followup]) {
    if (best === null || share > best[1]) best = [t, share];
  }
  return best ? best[0] + o.baseline : null;
}

const fmt = (v, d = 1) => (v == null ? "n/a" : v.toFixed(d));
/** A change with its sign; one that rounds to zero has none ("0.0", not "−0.0"). */
const signed = (v, d = 1) => {
  if (v == null) return "n/a";
  const a = Math.abs(v).toFixed(d);
  return Number(a) === 0 ? a : `${v > 0 ? "+" : "−"}${a}`;
};

/**
 * The change table: [figure, baseline, follow-up, change] rows of strings, as the page and the
 * printout show them.
 */
export function changeRows(cmp) {
  const c = cmp.change;
  const rows = [];
  rows.push(["Study date", cmp.dates.baseline ?? "unknown", cmp.dates.followup ?? "unknown",
    cmp.interval_days == null ? "interval unknown" : `${cmp.interval_days} days`]);
  const lung = c.lung_ml_values;
  for (const side of ["total", "left", "right"]) {
    rows.push([`Lung volume ${side === "total" ? "" : `${side} `}(mL)`, fmt(lung.baseline?.[side], 0), fmt(lung.followup?.[side], 0),
      c.lung_ml ? signed(c.lung_ml[side], 0) : "n/a"]);
  }
  for (const side of ["total", "left", "right"]) {
    rows.push([`Involvement ${side} (% of lung)`, fmt(c.involvement_pct.baseline[side]), fmt(c.involvement_pct.followup[side]),
      c.involvement_pct_points[side] == null ? "n/a" : `${signed(c.involvement_pct_points[side])} points`]);
  }
  const les = c.lesion_ml_values;
  for (const [key, name] of [["total", "Lesions total"], ["ggo", "Ground glass"], ["consolidation", "Consolidation"]]) {
    const pct = c.lesion_ml_pct?.[key];
    rows.push([`${name} (mL)`, fmt(les.baseline?.[key]), fmt(les.followup?.[key]),
      c.lesion_ml ? `${signed(c.lesion_ml[key])} mL${pct == null ? "" : ` (${signed(pct, 0)} %)`}` : "n/a"]);
  }
  const sev = c.severity;
  rows.push(["Severity", sev.baseline, sev.followup,
    sev.baseline === "n/a" || sev.followup === "n/a" ? "n/a" : sev.baseline === sev.followup ? "same" : "changed"]);
  rows.push(["Patient-level call", c.call_summary.baseline, c.call_summary.followup, ""]);
  const p = c.p_covid;
  rows.push(["p(COVID-19) of the call", fmt(p.baseline, 2), fmt(p.followup, 2),
    p.baseline == null || p.followup == null ? "n/a" : signed(p.followup - p.baseline, 2)]);
  return rows;
}

/** Line colours of the plot: baseline, follow-up. */
export const PLOT_COLOURS = ["#4fc3f7", "#ffb74d"];

/**
 * Draw the lesion share per level of both scans on a 2-D context: x = mm above the baseline's
 * lowest slice (its own frame for the follow-up when not aligned), y = lesion % of the lung.
 * `marker` (same x units) draws the current level. Returns the x scale for clicks.
 */
export function drawProfiles(ctx, w, h, profiles, marker) {
  const pad = { l: 42, r: 8, t: 8, b: 22 };
  ctx.fillStyle = "#000"; ctx.fillRect(0, 0, w, h);
  const pts = [...profiles.baseline, ...profiles.followup];
  const x0 = Math.min(0, ...pts.map((p) => p[0])), x1 = Math.max(1, ...pts.map((p) => p[0]));
  const yMax = Math.max(1, ...pts.map((p) => p[1])) * 1.1;
  const X = (t) => pad.l + ((t - x0) / (x1 - x0)) * (w - pad.l - pad.r);
  const Y = (v) => h - pad.b - (v / yMax) * (h - pad.t - pad.b);
  ctx.strokeStyle = "#555"; ctx.lineWidth = 1;
  ctx.beginPath(); ctx.moveTo(pad.l, pad.t); ctx.lineTo(pad.l, h - pad.b); ctx.lineTo(w - pad.r, h - pad.b); ctx.stroke();
  ctx.fillStyle = "#bbb"; ctx.font = "11px sans-serif";
  ctx.fillText(`${yMax.toFixed(0)} %`, 2, pad.t + 10);
  ctx.fillText("0 %", 2, h - pad.b);
  ctx.fillText(`${x0.toFixed(0)} mm`, pad.l, h - 6);
  ctx.fillText(`${x1.toFixed(0)} mm (towards the head)`, w - pad.r - 150, h - 6);
  [profiles.baseline, profiles.followup].forEach((line, k) => {
    ctx.strokeStyle = PLOT_COLOURS[k]; ctx.lineWidth = 2;
    ctx.beginPath();
    line.forEach(([t, v], i) => (i ? ctx.lineTo(X(t), Y(v)) : ctx.moveTo(X(t), Y(v))));
    ctx.stroke();
  });
  if (marker != null) {
    ctx.strokeStyle = "#fff"; ctx.setLineDash([4, 3]); ctx.lineWidth = 1;
    ctx.beginPath(); ctx.moveTo(X(marker), pad.t); ctx.lineTo(X(marker), h - pad.b); ctx.stroke();
    ctx.setLineDash([]);
  }
  return { x0, x1, left: pad.l, right: w - pad.r };
}
