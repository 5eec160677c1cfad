//! Classical lung segmentation, so lesions are counted inside the lungs and involvement can be
//! expressed as a share of lung.
//!
//! HU input: threshold at −320 HU; drop air connected to the edge of each slice (outside the
//! body); keep the one or two largest 3-D components (left and right lung, or both joined at the
//! carina); assign left/right from the volume's orientation; then per slice and side close small
//! gaps (vessels at the hilum, lesions at the pleura) and fill holes (vessels and lesions inside).
//!
//! 8-bit input has no HU: the same steps run on an Otsu threshold of the image and the result is
//! labelled approximate.
//!
//! Known limits: the trachea and main bronchi stay in the mask (a few tens of mL); lungs cut by
//! the edge of a cropped field of view lose the cut part.

use serde::Serialize;

use crate::volume::{CtVolume, IntensityScale};

/// −320 HU separates aerated lung (about −900…−500) from soft tissue (about −100…+100) with a
/// margin for ground glass (about −700…−300), which must stay inside the lung.
pub const LUNG_THRESHOLD_HU: f32 = -320.0;

/// Pure air, HU.
const PURE_AIR_HU: f32 = -950.0;
/// Pure air on an 8-bit image: black.
const PURE_AIR_8BIT: f32 = 10.0;
/// Components with more than this share of pure-air voxels are gas, not lung.
const GAS_FRACTION: f64 = 0.6;

/// Voxel labels of a [`LungMask`].
pub const RIGHT: u8 = 1;
pub const LEFT: u8 = 2;

/// Per-voxel lung labels (0 outside, [`RIGHT`], [`LEFT`]) in the volume's canonical order.
#[derive(Debug, Clone)]
pub struct LungMask {
    pub labels: Vec<u8>,
    /// True for 8-bit input, where the threshold is a guess rather than HU.
    pub approximate: bool,
    pub method: LungMethod,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LungMethod {
    /// −320 HU threshold with connected components, closing and hole filling.
    HuThreshold,
    /// Otsu threshold on an 8-bit image: approximate.
    ApproximateOtsu,
}

impl LungMask {
    pub fn count(&self, label: u8) -> usize {
        self.labels.iter().filter(|&&l| l == label).count()
    }

    pub fn slice(&self, vol: &CtVolume, z: usize) -> &[u8] {
        let n = vol.slice_len();
        &self.labels[z * n..(z + 1) * n]
    }
}

/// Air inside the airways (trachea, main bronchi), HU: the lumen is air, aerated lung around
/// −850 HU is not.
const AIRWAY_HU: f32 = -900.0;
/// Largest cross-section of the trachea or a main bronchus, mm² (trachea ≤ 25 mm wide).
const AIRWAY_MAX_AREA_MM2: f64 = 600.0;
/// How far below its first slice the airway is followed, mm (trachea + main bronchi).
const AIRWAY_MAX_LENGTH_MM: f64 = 160.0;
/// The trachea must start within this distance of the top of the volume, mm.
const AIRWAY_START_MM: f64 = 30.0;
/// Closing radius that joins aerated lung broken up by disease, mm.
const CLOSING_MM: f64 = 3.0;
/// A piece of dark pixels beside the lung in a slice with more than this share of pure air is
/// gas (stomach, bowel), not lung shaved off by the opening.
const RECLAIM_GAS_FRACTION: f64 = 0.2;
/// At most this many pieces of lung are kept (two lungs, each possibly cut by disease).
const MAX_PIECES: usize = 6;
/// Opening radius that cuts thin air bridges (partial volume at the diaphragm, bowel gas under
/// the lung bases, skin folds), mm.
const OPENING_MM: f64 = 2.0;

/// Segment the lungs of `vol` (3-D on HU volumes; each slice alone is the fallback for a single
/// slice and the approximate path for 8-bit images).
pub fn lung_mask(vol: &CtVolume) -> LungMask {
    let (threshold, approximate, method) = match vol.scale {
        IntensityScale::Hounsfield => (LUNG_THRESHOLD_HU, false, LungMethod::HuThreshold),
        IntensityScale::Display8Bit => (otsu(&vol.voxels), true, LungMethod::ApproximateOtsu),
    };
    let [nx, ny, nz] = vol.dims;
    let n2 = nx * ny;
    let hu = !approximate;
    // 1 = dark (air or lung), 0 = tissue.
    let mut m: Vec<u8> = vol
        .voxels
        .iter()
        .map(|&v| u8::from(v < threshold))
        .collect();
    // Outside the body: everything that is not the largest tissue region of the slice and is
    // reached from the slice edge through mostly pure air — outside air, the table, the air
    // between arms, blankets and skin. Air outside is ≤ −950 HU give or take noise; lung is
    // about −850 HU, so a lung cut by the edge of a cropped field of view stays.
    // 8-bit: outside air is black (0–10) in these images; lung is 20–90 in lung-windowed ones.
    let pure = if hu {
        PURE_AIR_HU
    } else {
        (threshold * 0.25).min(PURE_AIR_8BIT)
    };
    let mut region = Vec::new();
    let mut body = vec![0u8; n2];
    for z in 0..nz {
        remove_outside_body(
            &mut m[z * n2..(z + 1) * n2],
            vol.slice(z),
            nx,
            ny,
            (pure, hu),
            &mut body,
            &mut region,
        );
    }
    if hu && vol.spacing_known && nz >= 3 {
        remove_airways(&mut m, vol);
    }

    // Opening (per slice, a (2r+1)² square): thin bridges of dark voxels between the lungs and
    // gas under the diaphragm or in skin folds break before components are counted.
    let r_open = if nz < 3 {
        // A single slice has no bridges through z to cut.
        0
    } else if vol.spacing_known {
        (OPENING_MM / vol.spacing_mm[0].max(0.1))
            .round()
            .clamp(1.0, 4.0) as usize
    } else {
        1
    };
    let mut core = m.clone();
    let mut scratch = vec![0u8; n2];
    // Closing first (per slice): aerated lung broken up by reticulation or patchy
    // consolidation becomes one piece, so diffusely diseased lung is not dropped as specks.
    let r_close = if vol.spacing_known {
        (CLOSING_MM / vol.spacing_mm[0].max(0.1))
            .round()
            .clamp(1.0, 6.0) as usize
    } else {
        2
    };
    for z in 0..nz {
        let sl = &mut core[z * n2..(z + 1) * n2];
        if nz < 3 {
            close(sl, &mut scratch, nx, ny, r_close);
        }
        if r_open > 0 {
            erode(sl, &mut scratch, nx, ny, r_open);
        }
    }
    // Components of the core (6-connected): pass 1 marks each as 2 and records a seed, its
    // size, its share of pure air and its extent in z.
    let mut comps: Vec<Component> = Vec::new();
    let mut stack = Vec::new();
    for i in 0..core.len() {
        if core[i] == 1 {
            let c = flood3d(&mut core, vol.dims, i, 1, 2, &mut stack, &vol.voxels);
            // Mostly pure air (≤ −950 HU) is gas in the stomach or bowel, or the trachea alone:
            // aerated lung has tissue in every voxel (about −850 HU). Even severe emphysema
            // rarely has more than half its lung below −950 HU (the LAA-950 index).
            let gas = hu && c.pure_air as f64 > GAS_FRACTION * c.size as f64;
            if !gas {
                comps.push(c);
            }
        }
    }
    comps.sort_by_key(|c| std::cmp::Reverse(c.size));
    // A lung is at least 1 % of a slice's area per slice it spans, and at least 10 % of the
    // largest candidate (bowel gas and the trachea alone are smaller). The second lung lies
    // beside the first: a component that ends below the middle of the largest one is gas
    // under the diaphragm, not a lung.
    let min_size = (n2 / 100).max(1) * nz.clamp(1, 3);
    let kept: Vec<Component> = match comps.first() {
        None => Vec::new(),
        Some(first) if first.size < min_size => Vec::new(),
        Some(first) => {
            // Diseased lungs come in pieces (aerated lung cut by consolidation): every large
            // piece beside the largest is kept, up to MAX_PIECES.
            let up = superior_is_up(vol);
            let mid = first.z_sum as f64 / first.size as f64;
            comps
                .iter()
                .filter(|c| {
                    let top = if up { c.z_max as f64 } else { c.z_min as f64 };
                    let beside = nz < 3 || if up { top >= mid } else { top <= mid };
                    c.size >= min_size && c.size * 10 >= first.size && beside
                })
                .take(MAX_PIECES)
                .copied()
                .collect()
        }
    };
    let mut labels = vec![0u8; m.len()];
    if kept.is_empty() {
        return LungMask {
            labels,
            approximate,
            method,
        };
    }
    // Pass 2: mark the kept cores 10, 11, …, then grow each back by the opening radius inside the
    // dark voxels (the opening's dilation, restricted to the kept components).
    for (k, c) in kept.iter().enumerate() {
        flood3d(
            &mut core,
            vol.dims,
            c.seed,
            2,
            10 + k as u8,
            &mut stack,
            &vol.voxels,
        );
    }
    let mut grown = vec![0u8; m.len()];
    let mut side = vec![0u8; n2];
    for (k, _) in kept.iter().enumerate() {
        let tag = 10 + k as u8;
        for z in 0..nz {
            let sl = z * n2..(z + 1) * n2;
            let mut any = false;
            for (s, &c) in side.iter_mut().zip(&core[sl.clone()]) {
                *s = u8::from(c == tag);
                any |= *s == 1;
            }
            if !any {
                continue;
            }
            if r_open > 0 {
                box_max(&mut side, &mut scratch, nx, ny, r_open, 0);
            }
            for ((g, &s), &d) in grown[sl.clone()].iter_mut().zip(&side).zip(&m[sl]) {
                if s == 1 && d == 1 && *g == 0 {
                    *g = tag;
                }
            }
        }
    }
    drop(core);
    // What the opening shaved off and is joined in-plane to a kept lung comes back (aerated
    // pockets between dense reticulation, thin lung at the pleura), slice by slice, so nothing
    // is joined again through z — unless the piece is mostly pure air: that is gas (the
    // stomach under a lung base, in a thick slice), not lung.
    let mut seen = vec![false; n2];
    let mut piece = Vec::new();
    for z in 0..nz {
        let sl = z * n2;
        let vals = vol.slice(z);
        seen.iter_mut().for_each(|v| *v = false);
        for seed in 0..n2 {
            if seen[seed] || m[sl + seed] != 1 || grown[sl + seed] != 0 {
                continue;
            }
            piece.clear();
            seen[seed] = true;
            stack.clear();
            stack.push(seed);
            let mut tag = 0u8;
            while let Some(j) = stack.pop() {
                piece.push(j);
                let (x, y) = (j % nx, j / nx);
                for (ok, k) in [
                    (x > 0, j.wrapping_sub(1)),
                    (x + 1 < nx, j + 1),
                    (y > 0, j.wrapping_sub(nx)),
                    (y + 1 < ny, j + nx),
                ] {
                    if !ok || m[sl + k] != 1 {
                        continue;
                    }
                    if grown[sl + k] != 0 {
                        tag = grown[sl + k];
                    } else if !seen[k] {
                        seen[k] = true;
                        stack.push(k);
                    }
                }
            }
            let pure_air = piece.iter().filter(|&&j| vals[j] <= PURE_AIR_HU).count();
            if tag != 0 && !(hu && pure_air as f64 > RECLAIM_GAS_FRACTION * piece.len() as f64) {
                for &j in &piece {
                    grown[sl + j] = tag;
                }
            }
        }
    }
    let patient_x = |i: usize| -> f64 {
        let (x, y, z) = (i % nx, (i / nx) % ny, i / n2);
        let a = &vol.affine[0];
        a[0] * x as f64 + a[1] * y as f64 + a[2] * z as f64 + a[3]
    };
    split_at_junction(&grown, &mut labels, vol, threshold, kept.len(), &patient_x);
    drop(grown);

    // Per slice and side: close gaps of about 5 mm, then fill holes.
    let r = (5.0 / vol.spacing_mm[0].max(0.1)).round().clamp(1.0, 15.0) as usize;
    let r = if vol.spacing_known {
        r
    } else {
        (nx / 100).max(2)
    };
    for z in 0..nz {
        let sl = &mut labels[z * n2..(z + 1) * n2];
        for lab in [RIGHT, LEFT] {
            let mut any = false;
            for (s, &v) in side.iter_mut().zip(sl.iter()) {
                *s = u8::from(v == lab);
                any |= *s == 1;
            }
            if !any {
                continue;
            }
            close(&mut side, &mut scratch, nx, ny, r);
            fill_holes(&mut side, nx, ny);
            for (v, &s) in sl.iter_mut().zip(side.iter()) {
                // Never steal the other side's voxels.
                if s == 1 && *v == 0 {
                    *v = lab;
                }
            }
        }
    }
    LungMask {
        labels,
        approximate,
        method,
    }
}

/// How far from the aerated lung a lesion may reach and still count as lung, mm: a consolidated
/// segment at the pleura leaves such a bay in the aerated lung.
pub const ENVELOPE_MM: f64 = 15.0;
/// How far past the lung's convex hull a lesion may reach, mm (the pleura is curved).
const HULL_MARGIN_MM: f64 = 3.0;

/// The lesion rule, for one slice: a lesion pixel counts (and is lung) when it lies inside the
/// lung mask, or when it belongs to a lesion region (8-connected) that touches the lung mask
/// and lies inside that side's envelope — within [`ENVELOPE_MM`] of the lung and within 3 mm
/// of its convex hull on the slice: dense consolidation at the pleura, which the −320 HU threshold
/// leaves out of the lung, lies there; the chest wall lies outside the hull. Every other lesion
/// pixel (chest wall, mediastinum away from the lung, the table, outside the body) is dropped.
/// Returns the slice's lung labels with the absorbed lesions and the kept classes.
///
/// `lung` and `classes` are `[ny, nx]`; `pixel_mm` is the in-plane spacing when physical.
pub fn lesions_in_lung(
    lung: &[u8],
    classes: &[u8],
    nx: usize,
    ny: usize,
    pixel_mm: Option<f64>,
) -> (Vec<u8>, Vec<u8>) {
    let n2 = nx * ny;
    let mut out_lung = lung[..n2].to_vec();
    let mut out_cls = vec![0u8; n2];
    if !classes.iter().take(n2).any(|&c| c != 0) {
        return (out_lung, out_cls);
    }
    let (r, r_hull) = match pixel_mm {
        Some(p) => (
            (ENVELOPE_MM / p.max(0.1)).round().clamp(1.0, 40.0) as usize,
            (HULL_MARGIN_MM / p.max(0.1)).round().clamp(1.0, 15.0) as usize,
        ),
        None => ((nx / 25).max(2), (nx / 80).max(1)),
    };
    let mut hull = vec![0u8; n2];
    // Envelopes per side: bit 0 right, bit 1 left.
    let mut env = vec![0u8; n2];
    let mut side = vec![0u8; n2];
    let mut scratch = vec![0u8; n2];
    for (bit, lab) in [(1u8, RIGHT), (2u8, LEFT)] {
        let mut any = false;
        for (s, &v) in side.iter_mut().zip(lung) {
            *s = u8::from(v == lab);
            any |= *s == 1;
        }
        if !any {
            continue;
        }
        // The hull, widened by HULL_MARGIN_MM: the pleura bulges out past the chord that the
        // hull draws across a bay.
        hull.iter_mut().for_each(|v| *v = 0);
        for (y, range) in convex_hull_rows(&side, nx, ny).iter().enumerate() {
            if let Some((x0, x1)) = *range {
                hull[y * nx + x0..=y * nx + x1].fill(1);
            }
        }
        box_max(&mut hull, &mut scratch, nx, ny, r_hull, 0);
        box_max(&mut side, &mut scratch, nx, ny, r, 0);
        for ((e, &s), &h) in env.iter_mut().zip(&side).zip(&hull) {
            *e |= bit * s * h;
        }
    }
    // Lesion regions, 8-connected.
    let mut seen = vec![false; n2];
    let mut comp = Vec::new();
    let mut stack = Vec::new();
    for seed in 0..n2 {
        if classes[seed] == 0 || seen[seed] {
            continue;
        }
        comp.clear();
        seen[seed] = true;
        stack.push(seed);
        let (mut touch_r, mut touch_l) = (0usize, 0usize);
        while let Some(i) = stack.pop() {
            comp.push(i);
            let (x, y) = (i % nx, i / nx);
            for yy in y.saturating_sub(1)..(y + 2).min(ny) {
                for xx in x.saturating_sub(1)..(x + 2).min(nx) {
                    let j = yy * nx + xx;
                    match lung[j] {
                        RIGHT => touch_r += 1,
                        LEFT => touch_l += 1,
                        _ => {}
                    }
                    if classes[j] != 0 && !seen[j] {
                        seen[j] = true;
                        stack.push(j);
                    }
                }
            }
        }
        if touch_r + touch_l == 0 {
            continue;
        }
        let (main, main_bit) = if touch_l > touch_r {
            (LEFT, 2u8)
        } else {
            (RIGHT, 1u8)
        };
        for &i in &comp {
            if lung[i] != 0 {
                out_cls[i] = classes[i];
            } else if env[i] != 0 {
                out_cls[i] = classes[i];
                out_lung[i] = if env[i] & main_bit != 0 {
                    main
                } else if env[i] & 1 != 0 {
                    RIGHT
                } else {
                    LEFT
                };
            }
        }
    }
    (out_lung, out_cls)
}

/// The convex hull of the 1-pixels of a slice, as the column range it covers on each row
/// (`None` for rows it misses): Andrew's monotone chain over the two end pixels of each row.
fn convex_hull_rows(m: &[u8], nx: usize, ny: usize) -> Vec<Option<(usize, usize)>> {
    let mut pts: Vec<(i64, i64)> = Vec::new();
    for y in 0..ny {
        let row = &m[y * nx..(y + 1) * nx];
        if let (Some(a), Some(b)) = (
            row.iter().position(|&v| v != 0),
            row.iter().rposition(|&v| v != 0),
        ) {
            pts.push((a as i64, y as i64));
            if b != a {
                pts.push((b as i64, y as i64));
            }
        }
    }
    let mut rows = vec![None; ny];
    if pts.is_empty() {
        return rows;
    }
    pts.sort_unstable();
    let cross = |o: (i64, i64), a: (i64, i64), b: (i64, i64)| {
        (a.0 - o.0) * (b.1 - o.1) - (a.1 - o.1) * (b.0 - o.0)
    };
    let mut hull: Vec<(i64, i64)> = Vec::with_capacity(2 * pts.len());
    for pass in 0..2 {
        let start = hull.len();
        let iter: Box<dyn Iterator<Item = &(i64, i64)>> = if pass == 0 {
            Box::new(pts.iter())
        } else {
            Box::new(pts.iter().rev())
        };
        for &p in iter {
            while hull.len() >= start + 2
                && cross(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0
            {
                hull.pop();
            }
            hull.push(p);
        }
        hull.pop();
    }
    if hull.is_empty() {
        hull.push(pts[0]);
    }
    // Each row's span: where the hull's edges cross it (vertices included).
    let n = hull.len();
    for k in 0..n {
        let (a, b) = (hull[k], hull[(k + 1) % n]);
        let (y0, y1) = (a.1.min(b.1), a.1.max(b.1));
        for y in y0..=y1 {
            let x = if a.1 == b.1 {
                // A horizontal edge covers both ends.
                for x in [a.0, b.0] {
                    widen(&mut rows, y as usize, x as usize);
                }
                continue;
            } else {
                let t = (y - a.1) as f64 / (b.1 - a.1) as f64;
                (a.0 as f64 + t * (b.0 - a.0) as f64).round() as usize
            };
            widen(&mut rows, y as usize, x);
        }
    }
    rows
}

fn widen(rows: &mut [Option<(usize, usize)>], y: usize, x: usize) {
    rows[y] = Some(match rows[y] {
        None => (x, x),
        Some((a, b)) => (a.min(x), b.max(x)),
    });
}

/// Whether increasing z points to the patient's head (+S in LPS).
fn superior_is_up(vol: &CtVolume) -> bool {
    vol.affine[2][2] >= 0.0
}

/// One connected component of candidate lung voxels.
#[derive(Debug, Clone, Copy)]
struct Component {
    seed: usize,
    size: usize,
    pure_air: usize,
    z_min: usize,
    z_max: usize,
    z_sum: usize,
}

/// Left or right for each kept piece of lung (`grown` holds tags 10, 11, …), slice by slice,
/// around the body's midline (mean x of its tissue): a piece on one side of the midline is that
/// side's; a piece holding both lungs (joined at the anterior or posterior junction, or through
/// the carina) is split where the fewest of its voxels cross a column near the midline — the
/// junction line — rather than at one fixed x for the whole volume.
fn split_at_junction(
    grown: &[u8],
    labels: &mut [u8],
    vol: &CtVolume,
    threshold: f32,
    pieces: usize,
    patient_x: &dyn Fn(usize) -> f64,
) {
    let [nx, ny, nz] = vol.dims;
    let n2 = nx * ny;
    let (mut tx, mut tn) = (0.0f64, 0usize);
    for (i, &v) in vol.voxels.iter().enumerate() {
        if v >= threshold {
            tx += (i % nx) as f64;
            tn += 1;
        }
    }
    let centre = if tn > 0 {
        tx / tn as f64
    } else {
        nx as f64 / 2.0
    }
    .round() as isize;
    let half = (nx / 10).max(1) as isize;
    let mut cols = vec![0usize; nx];
    for tag in (10..).take(pieces) {
        for z in 0..nz {
            let sl = &grown[z * n2..(z + 1) * n2];
            cols.iter_mut().for_each(|v| *v = 0);
            let mut any = false;
            for (i, &v) in sl.iter().enumerate() {
                if v == tag {
                    cols[i % nx] += 1;
                    any = true;
                }
            }
            if !any {
                continue;
            }
            // The fewest voxels in a 3-column window, closest to the midline on ties.
            let lo = (centre - half).max(1);
            let hi = (centre + half).min(nx as isize - 2);
            let mut split = centre.clamp(0, nx as isize - 1) as usize;
            let mut best = usize::MAX;
            for x in lo..=hi {
                let x = x as usize;
                let w = cols[x - 1] + cols[x] + cols[x + 1];
                let d = (x as isize - centre).unsigned_abs();
                let bd = (split as isize - centre).unsigned_abs();
                if w < best || (w == best && d < bd) {
                    best = w;
                    split = x;
                }
            }
            let split_x = patient_x(z * n2 + (ny / 2) * nx + split);
            for (j, &v) in sl.iter().enumerate() {
                if v == tag {
                    let i = z * n2 + j;
                    // LPS: larger x is the patient's left.
                    labels[i] = if patient_x(i) > split_x { LEFT } else { RIGHT };
                }
            }
        }
    }
}

/// Remove the trachea and main bronchi from the dark voxels `m`: starting near the top of the
/// volume from a small, round, midline region of air, follow the airway down slice by slice
/// while its cross-section stays airway-sized and mostly air; stop where it merges into the
/// lung. The lumen and a one-voxel rim (its partial-volume wall) are cleared, so the lungs no
/// longer join through the carina.
fn remove_airways(m: &mut [u8], vol: &CtVolume) {
    let [nx, ny, nz] = vol.dims;
    let n2 = nx * ny;
    let px_mm2 = vol.spacing_mm[0] * vol.spacing_mm[1];
    let max_px = (AIRWAY_MAX_AREA_MM2 / px_mm2) as usize;
    let min_px = ((30.0 / px_mm2) as usize).max(2);
    let dz = vol.spacing_mm[2].max(0.1);
    let order: Vec<usize> = if superior_is_up(vol) {
        (0..nz).rev().collect()
    } else {
        (0..nz).collect()
    };
    let start_slices = ((AIRWAY_START_MM / dz).ceil() as usize).max(1);
    let max_slices = (AIRWAY_MAX_LENGTH_MM / dz).ceil() as usize;
    let mut prev = vec![0u8; n2];
    let mut cur = vec![0u8; n2];
    let mut lumen = vec![0u8; n2];
    let mut comp = Vec::new();
    let mut stack = Vec::new();
    let mut started_at: Option<usize> = None;
    for (step, &z) in order.iter().enumerate() {
        if started_at.is_none() && step >= start_slices {
            return;
        }
        if let Some(s) = started_at
            && step - s > max_slices
        {
            return;
        }
        let sl = &mut m[z * n2..(z + 1) * n2];
        let vals = vol.slice(z);
        for ((l, &d), &v) in lumen.iter_mut().zip(sl.iter()).zip(vals) {
            *l = u8::from(d == 1 && v < AIRWAY_HU);
        }
        // Midline of the body on this slice: mean x of its tissue.
        let (mut tx, mut tn) = (0usize, 0usize);
        for (i, &v) in vals.iter().enumerate() {
            if v >= LUNG_THRESHOLD_HU {
                tx += i % nx;
                tn += 1;
            }
        }
        let mid_x = if tn > 0 {
            tx as f64 / tn as f64
        } else {
            nx as f64 / 2.0
        };
        cur.iter_mut().for_each(|v| *v = 0);
        let mut found = false;
        for seed in 0..n2 {
            if lumen[seed] != 1 {
                continue;
            }
            flood2d(&mut lumen, nx, ny, seed, (1, 2), &mut stack, &mut comp);
            if comp.len() < min_px || comp.len() > max_px {
                continue;
            }
            let is_airway = if started_at.is_some() {
                comp.iter().any(|&i| prev[i] == 1)
            } else {
                let (mut x0, mut x1, mut y0, mut y1) = (nx, 0, ny, 0);
                let mut cx = 0usize;
                for &i in &comp {
                    let (x, y) = (i % nx, i / nx);
                    (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
                    cx += x;
                }
                let cx = cx as f64 / comp.len() as f64;
                let bbox = (x1 - x0 + 1) * (y1 - y0 + 1);
                // Round (fills over half its box) and within 25 mm of the midline.
                comp.len() * 2 > bbox && (cx - mid_x).abs() * vol.spacing_mm[0] < 25.0
            };
            if is_airway {
                found = true;
                for &i in &comp {
                    cur[i] = 1;
                }
            }
        }
        if !found {
            if started_at.is_some() {
                return;
            }
            continue;
        }
        started_at.get_or_insert(step);
        // Clear the lumen and a one-voxel rim of dark voxels around it.
        for (i, _) in cur.iter().enumerate().filter(|(_, c)| **c == 1) {
            let (x, y) = (i % nx, i / nx);
            for yy in y.saturating_sub(1)..(y + 2).min(ny) {
                for xx in x.saturating_sub(1)..(x + 2).min(nx) {
                    sl[yy * nx + xx] = 0;
                }
            }
        }
        std::mem::swap(&mut prev, &mut cur);
    }
}

/// Flood the `from`-valued component containing `seed` with `to` (6-connectivity). Returns its
/// size, how many of its `values` are pure air and its extent in z. `stack` is reused.
fn flood3d(
    m: &mut [u8],
    dims: [usize; 3],
    seed: usize,
    from: u8,
    to: u8,
    stack: &mut Vec<usize>,
    values: &[f32],
) -> Component {
    let [nx, ny, nz] = dims;
    let n2 = nx * ny;
    stack.clear();
    m[seed] = to;
    stack.push(seed);
    let mut c = Component {
        seed,
        size: 0,
        pure_air: 0,
        z_min: usize::MAX,
        z_max: 0,
        z_sum: 0,
    };
    while let Some(i) = stack.pop() {
        c.size += 1;
        c.pure_air += usize::from(values[i] <= PURE_AIR_HU);
        let (x, y, z) = (i % nx, (i / nx) % ny, i / n2);
        c.z_min = c.z_min.min(z);
        c.z_max = c.z_max.max(z);
        c.z_sum += z;
        let mut visit = |j: usize, m: &mut [u8]| {
            if m[j] == from {
                m[j] = to;
                stack.push(j);
            }
        };
        if x > 0 {
            visit(i - 1, m);
        }
        if x + 1 < nx {
            visit(i + 1, m);
        }
        if y > 0 {
            visit(i - nx, m);
        }
        if y + 1 < ny {
            visit(i + nx, m);
        }
        if z > 0 {
            visit(i - n2, m);
        }
        if z + 1 < nz {
            visit(i + n2, m);
        }
    }
    c
}

/// Clear from `s` (1 = dark) what lies outside the body on this slice. The body is the largest
/// 4-connected tissue region; every other pixel (dark, or tissue of the arms, table, blankets)
/// reached from the slice edge without crossing the body is outside when the whole body lies in
/// the field of view (over half the slice's border is air), and otherwise — a cropped field of
/// view, where a lung may be open to the edge — only where that region is mostly pure air (more
/// than a third of its pixels at or below `pure`); the strict rule needs `strict_ok` (HU).
/// `body` and `region` are scratch.
fn remove_outside_body(
    s: &mut [u8],
    vals: &[f32],
    nx: usize,
    ny: usize,
    (pure, strict_ok): (f32, bool),
    body: &mut [u8],
    region: &mut Vec<usize>,
) {
    for (b, &d) in body.iter_mut().zip(s.iter()) {
        *b = 1 - d;
    }
    largest_region(body, nx, ny);
    // Not body → 1, body → 0.
    for b in body.iter_mut() {
        *b = 1 - *b;
    }
    // A body wholly inside the field of view (over half of the slice's border is air): every
    // region reached from the edge around the body is outside, pure air or not — the foam of
    // the table, blankets, the air between arms and chest. A body cut by the edge (a cropped
    // field of view) may have lungs open to the edge: there only mostly-pure-air regions go.
    let border: Vec<usize> = (0..nx)
        .flat_map(|x| [x, (ny - 1) * nx + x])
        .chain((0..ny).flat_map(|y| [y * nx, y * nx + nx - 1]))
        .collect();
    let air = border.iter().filter(|&&i| vals[i] <= pure).count();
    // Only with HU: on an 8-bit image lung can be as dark as air, and these are crops anyway.
    let inside_fov = strict_ok && air * 2 > border.len();
    clear_edge_regions(body, nx, ny, region, |r| {
        inside_fov || r.iter().filter(|&&i| vals[i] <= pure).count() * 3 > r.len()
    });
    // body is now 1 inside (or in a region kept), 0 where outside was removed.
    for (d, &b) in s.iter_mut().zip(body.iter()) {
        if b == 0 && *d == 1 {
            // A removed region: outside. (Tissue of the body stays 0 in `body` too, and is
            // not dark, so nothing is lost.)
            *d = 0;
        }
    }
}

/// Keep only the largest 4-connected region of 1-pixels in `m` (set to 1, all else 0).
/// Returns whether there was any.
fn largest_region(m: &mut [u8], nx: usize, ny: usize) -> bool {
    let (mut stack, mut region) = (Vec::new(), Vec::new());
    let (mut best, mut best_seed) = (0usize, None);
    for seed in 0..m.len() {
        if m[seed] == 1 {
            flood2d(m, nx, ny, seed, (1, 2), &mut stack, &mut region);
            if region.len() > best {
                (best, best_seed) = (region.len(), Some(seed));
            }
        }
    }
    let Some(seed) = best_seed else {
        return false;
    };
    flood2d(m, nx, ny, seed, (2, 5), &mut stack, &mut region);
    for v in m.iter_mut() {
        *v = u8::from(*v == 5);
    }
    true
}

/// Flood the 4-connected region of `from`-valued pixels of a slice containing `seed` with `to`,
/// appending its pixels to `region` (cleared first). `stack` is scratch.
fn flood2d(
    m: &mut [u8],
    nx: usize,
    ny: usize,
    seed: usize,
    (from, to): (u8, u8),
    stack: &mut Vec<usize>,
    region: &mut Vec<usize>,
) {
    region.clear();
    stack.clear();
    m[seed] = to;
    stack.push(seed);
    while let Some(i) = stack.pop() {
        region.push(i);
        let (x, y) = (i % nx, i / nx);
        for (ok, j) in [
            (x > 0, i.wrapping_sub(1)),
            (x + 1 < nx, i + 1),
            (y > 0, i.wrapping_sub(nx)),
            (y + 1 < ny, i + nx),
        ] {
            if ok && m[j] == from {
                m[j] = to;
                stack.push(j);
            }
        }
    }
}

/// Set to 0 every 1-pixel 4-connected to the slice's edge.
fn remove_border_connected(s: &mut [u8], nx: usize, ny: usize) {
    clear_edge_regions(s, nx, ny, &mut Vec::new(), |_| true);
}

/// For each 4-connected region of 1-pixels touching the slice's edge, set it to 0 when
/// `remove(pixels)` says so, else leave it 1. `region` is reused between calls.
fn clear_edge_regions(
    s: &mut [u8],
    nx: usize,
    ny: usize,
    region: &mut Vec<usize>,
    mut remove: impl FnMut(&[usize]) -> bool,
) {
    const SEEN: u8 = 3;
    const KEPT: u8 = 4;
    let mut stack = Vec::new();
    let border: Vec<usize> = (0..nx)
        .flat_map(|x| [x, (ny - 1) * nx + x])
        .chain((0..ny).flat_map(|y| [y * nx, y * nx + nx - 1]))
        .collect();
    for seed in border {
        if s[seed] != 1 {
            continue;
        }
        flood2d(s, nx, ny, seed, (1, SEEN), &mut stack, region);
        let mark = if remove(region) { 0 } else { KEPT };
        for &i in region.iter() {
            s[i] = mark;
        }
    }
    for v in s.iter_mut() {
        if *v == KEPT {
            *v = 1;
        }
    }
}

/// Fill 0-regions not 4-connected to the slice's edge.
fn fill_holes(s: &mut [u8], nx: usize, ny: usize) {
    // Mark outside-reachable zeros as 2 by flipping roles, then restore.
    for v in s.iter_mut() {
        *v = if *v == 0 { 1 } else { 3 };
    }
    remove_border_connected(s, nx, ny); // reachable zeros (now 1) become 0
    for v in s.iter_mut() {
        *v = u8::from(*v != 0);
    }
}

/// Erosion with a (2r+1)² square; outside the slice counts as foreground so the edge does not
/// erode (a lung cut by a cropped field of view keeps its cut face).
fn erode(s: &mut [u8], scratch: &mut [u8], nx: usize, ny: usize, r: usize) {
    for v in s.iter_mut() {
        *v = 1 - *v;
    }
    box_max(s, scratch, nx, ny, r, 0);
    for v in s.iter_mut() {
        *v = 1 - *v;
    }
}

/// Morphological closing with a (2r+1)² square: dilation then erosion, each as two separable
/// running-count passes, so the cost does not grow with `r`.
fn close(s: &mut [u8], scratch: &mut [u8], nx: usize, ny: usize, r: usize) {
    box_max(s, scratch, nx, ny, r, 0);
    // Erosion of m = complement of the dilation of the complement; outside the slice counts as
    // foreground so the edge does not erode.
    for v in s.iter_mut() {
        *v = 1 - *v;
    }
    box_max(s, scratch, nx, ny, r, 0);
    for v in s.iter_mut() {
        *v = 1 - *v;
    }
}

/// In place: each pixel becomes 1 if any pixel of its (2r+1)² box is 1. Outside the slice is
/// `outside`.
fn box_max(s: &mut [u8], tmp: &mut [u8], nx: usize, ny: usize, r: usize, outside: u8) {
    let ri = r as isize;
    // Rows → tmp.
    for y in 0..ny {
        let row = &s[y * nx..(y + 1) * nx];
        let at = |x: isize| -> usize {
            if x < 0 || x >= nx as isize {
                outside as usize
            } else {
                row[x as usize] as usize
            }
        };
        let mut count: usize = (-ri..=ri).map(at).sum();
        for x in 0..nx as isize {
            tmp[y * nx + x as usize] = u8::from(count > 0);
            count = count + at(x + ri + 1) - at(x - ri);
        }
    }
    // Columns → s, a row at a time (running counts per column: contiguous memory, where a
    // column walk strides by a whole row per step).
    let row_of = |y: isize| -> Option<&[u8]> {
        (y >= 0 && y < ny as isize).then(|| &tmp[y as usize * nx..(y as usize + 1) * nx])
    };
    let mut count = vec![0i32; nx];
    let add = |count: &mut [i32], row: Option<&[u8]>, sign: i32| match row {
        Some(row) => count
            .iter_mut()
            .zip(row)
            .for_each(|(c, &v)| *c += sign * v as i32),
        None => count.iter_mut().for_each(|c| *c += sign * outside as i32),
    };
    for dy in -ri..=ri {
        add(&mut count, row_of(dy), 1);
    }
    for y in 0..ny as isize {
        for (o, &c) in s[y as usize * nx..(y as usize + 1) * nx]
            .iter_mut()
            .zip(&count)
        {
            *o = u8::from(c > 0);
        }
        add(&mut count, row_of(y + ri + 1), 1);
        add(&mut count, row_of(y - ri), -1);
    }
}

/// Otsu's threshold of 0–255 values (between the two modes: air/lung vs tissue).
fn otsu(values: &[f32]) -> f32 {
    let mut hist = [0u64; 256];
    for &v in values {
        hist[v.round().clamp(0.0, 255.0) as usize] += 1;
    }
    let total: u64 = hist.iter().sum();
    let sum: f64 = hist
        .iter()
        .enumerate()
        .map(|(i, &c)| i as f64 * c as f64)
        .sum();
    let (mut w0, mut sum0, mut best, mut best_t) = (0u64, 0.0f64, -1.0f64, 128usize);
    for (t, &c) in hist.iter().enumerate() {
        w0 += c;
        if w0 == 0 || w0 == total {
            continue;
        }
        sum0 += t as f64 * c as f64;
        let w1 = total - w0;
        let m0 = sum0 / w0 as f64;
        let m1 = (sum - sum0) / w1 as f64;
        let between = w0 as f64 * w1 as f64 * (m0 - m1).powi(2);
        if between > best {
            best = between;
            best_t = t;
        }
    }
    best_t as f32 + 0.5
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::InputKind;

    /// A synthetic chest: a soft-tissue ellipse body in air, two lung ellipses at −850 HU with
    /// a vessel (+40 HU) inside each.
    pub(crate) fn chest(dims: [usize; 3], x_flip: bool) -> CtVolume {
        let [nx, ny, nz] = dims;
        let mut v = vec![-1000.0f32; nx * ny * nz];
        for z in 0..nz {
            for y in 0..ny {
                for x in 0..nx {
                    let (fx, fy) = (x as f32 / nx as f32 - 0.5, y as f32 / ny as f32 - 0.5);
                    let i = x + nx * (y + ny * z);
                    if (fx / 0.45).powi(2) + (fy / 0.35).powi(2) < 1.0 {
                        v[i] = 40.0;
                    }
                    for cx in [-0.2f32, 0.2] {
                        let d = (((fx - cx) / 0.15).powi(2) + (fy / 0.25).powi(2)).sqrt();
                        if d < 1.0 {
                            v[i] = if d < 0.15 { 40.0 } else { -850.0 };
                        }
                    }
                }
            }
        }
        let sx = if x_flip { -0.7 } else { 0.7 };
        let affine = [
            [sx, 0.0, 0.0, 0.0],
            [0.0, 0.7, 0.0, 0.0],
            [0.0, 0.0, 2.0, 0.0],
        ];
        CtVolume::new(
            v,
            dims,
            [0.7, 0.7, 2.0],
            affine,
            IntensityScale::Hounsfield,
            InputKind::Nifti,
        )
    }

    /// Truth labels of [`anatomy`].
    const T_LUNG: u8 = 1;
    const T_AIRWAY: u8 = 2;
    const T_GAS: u8 = 3;
    const T_PATCH: u8 = 4;
    const T_TABLE: u8 = 5;

    /// A 3-D chest phantom with what the lung mask must handle, and the truth of every voxel:
    /// two lungs (−850 HU with noise and vessels) above a domed diaphragm, a trachea (air)
    /// from the top of the volume to a carina, main bronchi into both lungs, a gas-filled
    /// bowel loop (−800 HU, not pure air) under the left lung base, a consolidation patch
    /// (+20 HU) at the lateral pleura of the right lung, and a table under the body.
    /// 1.5 mm pixels, 2.5 mm slices, +x = patient left, +z = superior.
    fn anatomy() -> (CtVolume, Vec<u8>) {
        let (nx, ny, nz) = (128usize, 112usize, 64usize);
        let (sx, sz) = (1.5f32, 2.5f32);
        let mut v = vec![-1000.0f32; nx * ny * nz];
        let mut truth = vec![0u8; nx * ny * nz];
        let mut rng = crate::rng::Rng::new(3);
        let cx = nx as f32 / 2.0;
        let cy = ny as f32 / 2.0;
        for z in 0..nz {
            let zm = z as f32 * sz; // mm from the bottom
            for y in 0..ny {
                for x in 0..nx {
                    let i = x + nx * (y + ny * z);
                    let (px, py) = ((x as f32 - cx) * sx, (y as f32 - cy) * sx);
                    let noise = 20.0 * (rng.uniform() - 0.5);
                    // Table: a slab under the body, with an air gap.
                    if py > 66.0 && py < 75.0 {
                        v[i] = 150.0 + noise;
                        truth[i] = T_TABLE;
                        continue;
                    }
                    if (px / 85.0).powi(2) + (py / 62.0).powi(2) >= 1.0 {
                        v[i] = -1000.0 + noise;
                        continue;
                    }
                    v[i] = 40.0 + noise;
                    // Lungs: half-ellipsoids above a dome; base at 40 mm (centre) .. 30 mm.
                    for side in [-1.0f32, 1.0] {
                        let lx = px - side * 40.0;
                        let base = 30.0 + 10.0 * (1.0 - (lx / 30.0).powi(2)).max(0.0);
                        let top = 150.0;
                        if zm < base || zm > top {
                            continue;
                        }
                        let t = (zm - base) / (top - base); // 0 base .. 1 apex
                        let shrink = (1.0 - t * t).max(0.0).sqrt().max(0.2);
                        if (lx / (30.0 * shrink)).powi(2) + (py / (45.0 * shrink)).powi(2) < 1.0 {
                            v[i] = -850.0 + 60.0 * (rng.uniform() - 0.5);
                            truth[i] = T_LUNG;
                            // A vessel.
                            if (lx - 5.0).powi(2) + (py + 10.0).powi(2) < 9.0 {
                                v[i] = 40.0 + noise;
                            }
                            // Consolidation at the lateral pleura of the right lung (−x).
                            if side < 0.0
                                && (70.0..100.0).contains(&zm)
                                && lx < -30.0 * shrink + 14.0
                                && py.abs() < 15.0
                            {
                                v[i] = 20.0 + noise;
                                truth[i] = T_PATCH;
                            }
                        }
                    }
                    // Trachea from the top down to the carina at 120 mm; main bronchi to 105 mm.
                    let airway = if zm >= 120.0 {
                        px.powi(2) + (py + 5.0).powi(2) < 64.0
                    } else if zm >= 105.0 {
                        let off = (120.0 - zm) * 1.6;
                        [-1.0f32, 1.0]
                            .iter()
                            .any(|s| (px - s * off).powi(2) + (py + 5.0).powi(2) < 30.0)
                    } else {
                        false
                    };
                    if airway && truth[i] != T_LUNG {
                        v[i] = -1000.0 + noise;
                        truth[i] = T_AIRWAY;
                    }
                    // Bowel gas under the left lung base, 10 mm of tissue between.
                    let (gx, gy, gz) = (px - 40.0, py - 5.0, zm - 12.0);
                    if (gx / 28.0).powi(2) + (gy / 30.0).powi(2) + (gz / 9.0).powi(2) < 1.0 {
                        v[i] = -800.0 + 60.0 * (rng.uniform() - 0.5);
                        truth[i] = T_GAS;
                    }
                }
            }
        }
        let affine = [
            [sx as f64, 0.0, 0.0, 0.0],
            [0.0, sx as f64, 0.0, 0.0],
            [0.0, 0.0, sz as f64, 0.0],
        ];
        let vol = CtVolume::new(
            v,
            [nx, ny, nz],
            [sx as f64, sx as f64, sz as f64],
            affine,
            IntensityScale::Hounsfield,
            InputKind::Nifti,
        );
        (vol, truth)
    }

    /// The separable running-count dilation equals the square-window maximum, borders
    /// included (`outside` counts as set or not).
    #[test]
    fn box_max_is_the_square_window_maximum() {
        let (nx, ny) = (23, 17);
        let mut state = 12345u32;
        let img: Vec<u8> = (0..nx * ny)
            .map(|_| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                u8::from((state >> 16).is_multiple_of(13))
            })
            .collect();
        for r in [1usize, 2, 5] {
            for outside in [0u8, 1] {
                let mut got = img.clone();
                let mut tmp = vec![0u8; nx * ny];
                box_max(&mut got, &mut tmp, nx, ny, r, outside);
                for y in 0..ny as isize {
                    for x in 0..nx as isize {
                        let r = r as isize;
                        let want = (-r..=r).any(|dy| {
                            (-r..=r).any(|dx| {
                                let (xx, yy) = (x + dx, y + dy);
                                if xx < 0 || yy < 0 || xx >= nx as isize || yy >= ny as isize {
                                    outside == 1
                                } else {
                                    img[yy as usize * nx + xx as usize] == 1
                                }
                            })
                        });
                        assert_eq!(
                            got[y as usize * nx + x as usize],
                            u8::from(want),
                            "r {r} outside {outside} at ({x}, {y})"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn phantom_anatomy_trachea_out_gas_out_volume_recovered() {
        let (vol, truth) = anatomy();
        let m = lung_mask(&vol);
        let count = |t: u8| truth.iter().filter(|&&v| v == t).count();
        let in_mask = |t: u8| {
            truth
                .iter()
                .zip(&m.labels)
                .filter(|(tv, l)| **tv == t && **l != 0)
                .count()
        };
        assert!(count(T_AIRWAY) > 500 && count(T_GAS) > 1000);
        // The trachea and main bronchi are not lung (a rim where they meet the lung aside).
        assert!(
            in_mask(T_AIRWAY) * 20 < count(T_AIRWAY),
            "{} of {} airway voxels called lung",
            in_mask(T_AIRWAY),
            count(T_AIRWAY)
        );
        assert_eq!(
            in_mask(T_GAS),
            0,
            "bowel gas under the diaphragm called lung"
        );
        assert_eq!(in_mask(T_TABLE), 0);
        // Aerated lung (vessels inside count as lung): within 5 %.
        let truth_lung = truth
            .iter()
            .zip(&vol.voxels)
            .filter(|(t, _)| **t == T_LUNG)
            .count();
        let ours = m.count(LEFT) + m.count(RIGHT) - in_mask(T_PATCH);
        let rel = ours as f64 / truth_lung as f64 - 1.0;
        eprintln!(
            "phantom: lung {ours} vs {truth_lung} voxels ({:+.1} %); airway {} of {} voxels left",
            100.0 * rel,
            in_mask(T_AIRWAY),
            count(T_AIRWAY)
        );
        assert!(
            rel.abs() < 0.05,
            "lung {ours} vs {truth_lung} voxels ({rel:+.3})"
        );
        // Both sides, right on −x.
        let right_truth = (0..truth.len())
            .filter(|&i| truth[i] == T_LUNG && (i % 128) < 64)
            .count();
        assert!(
            (m.count(RIGHT) as f64 / right_truth as f64 - 1.0).abs() < 0.08,
            "{} vs {right_truth}",
            m.count(RIGHT)
        );
    }

    #[test]
    fn consolidation_at_the_pleura_counts_as_lung_and_lesion_lesions_outside_are_dropped() {
        use crate::report::{ReportContext, SliceResult, build};
        let (vol, truth) = anatomy();
        let m = lung_mask(&vol);
        let [nx, ny, nz] = vol.dims;
        let n2 = nx * ny;
        // The −320 HU threshold leaves most of the dense patch out of the lung mask.
        let patch = truth.iter().filter(|&&t| t == T_PATCH).count();
        let patch_in_mask = (0..truth.len())
            .filter(|&i| truth[i] == T_PATCH && m.labels[i] != 0)
            .count();
        assert!(
            patch > 1000 && patch_in_mask * 2 < patch,
            "{patch_in_mask}/{patch}"
        );
        // A perfect model: consolidation on the patch; plus a false lesion on the table.
        let slices: Vec<SliceResult> = (0..nz)
            .map(|z| SliceResult {
                z,
                p_covid: 0.9,
                classes: (0..n2)
                    .map(|j| match truth[z * n2 + j] {
                        T_PATCH => 2,
                        T_TABLE => 1,
                        _ => 0,
                    })
                    .collect(),
                recon_mse: None,
                ood: None,
                counts: None,
            })
            .collect();
        let ctx = ReportContext {
            input: "anatomy",
            model: "m",
            backend: "cpu",
        };
        let r = build(&ctx, &vol, &m, &slices);
        let voxel = vol.voxel_ml().unwrap();
        let want = patch as f64 * voxel;
        let les = r.lesion_ml.clone().unwrap();
        eprintln!(
            "phantom: consolidation {:.2} mL vs {want:.2} mL; {patch_in_mask} of {patch} patch voxels in the threshold mask",
            les.consolidation
        );
        assert!(
            (les.consolidation / want - 1.0).abs() < 0.05,
            "consolidation {:.1} mL vs {want:.1} mL",
            les.consolidation
        );
        assert_eq!(les.ggo, 0.0, "the lesion on the table must be dropped");
        // The consolidated patch is part of the right lung's volume.
        let lung = r.lung_ml.clone().unwrap();
        let truth_lung = truth.iter().filter(|&&t| t == T_LUNG).count() as f64 * voxel;
        let total = lung.left + lung.right;
        assert!(
            (total / (truth_lung + want) - 1.0).abs() < 0.05,
            "lung {total:.0} mL vs {:.0} mL",
            truth_lung + want
        );
        assert!(r.involvement_pct.right.unwrap() > 0.0 && r.involvement_pct.left == Some(0.0));
        // The exported label map follows the same rule: nothing on the table.
        let labels = crate::pipeline::lesion_labels(&vol, &m, &slices);
        assert!(
            (0..labels.len()).all(|i| labels[i] == 0 || truth[i] == T_PATCH),
            "exported lesions outside the patch"
        );
    }

    #[test]
    fn convex_hull_fills_a_bay_and_nothing_outside() {
        // A 20×20 square with a 6-pixel-deep bay cut into its right side.
        let (nx, ny) = (30, 30);
        let mut m = vec![0u8; nx * ny];
        for y in 5..25 {
            for x in 5..25 {
                m[y * nx + x] = u8::from(!((10..20).contains(&y) && x >= 19));
            }
        }
        let rows = convex_hull_rows(&m, nx, ny);
        assert_eq!(rows[4], None);
        assert_eq!(rows[25], None);
        for (y, row) in rows.iter().enumerate().take(25).skip(5) {
            assert_eq!(*row, Some((5, 24)), "row {y}");
        }
        // A single pixel and an empty slice.
        let mut one = vec![0u8; 9];
        one[4] = 1;
        assert_eq!(convex_hull_rows(&one, 3, 3)[1], Some((1, 1)));
        assert!(convex_hull_rows(&[0; 9], 3, 3).iter().all(Option::is_none));
    }

    #[test]
    fn two_lungs_found_with_vessels_filled_and_sides_from_orientation() {
        let vol = chest([96, 80, 4], false);
        let m = lung_mask(&vol);
        assert!(!m.approximate);
        let (r, l) = (m.count(RIGHT), m.count(LEFT));
        assert!(r > 0 && l > 0);
        assert!((r as f64 / l as f64 - 1.0).abs() < 0.05, "{r} vs {l}");
        // The vessel at the centre of the image-left lung is inside the mask (filled).
        let centre = (0.3 * 96.0) as usize + 96 * 40;
        assert_ne!(m.labels[centre], 0);
        // Image-left (small x) is the patient's right when x points to the patient's left.
        assert_eq!(m.labels[centre], RIGHT);
        // Body and outside air are not lung.
        assert_eq!(m.labels[0], 0);
        assert_eq!(m.labels[48 + 96 * 10], 0);

        // Flip the x axis in the affine: the same voxels now belong to the other side.
        let flipped = lung_mask(&chest([96, 80, 4], true));
        assert_eq!(flipped.labels[centre], LEFT);
    }

    #[test]
    fn eight_bit_input_gets_an_approximate_mask() {
        let mut vol = chest([64, 64, 1], false);
        for v in &mut vol.voxels {
            *v = crate::preprocess::LUNG_WINDOW.to_u8(*v) as f32;
        }
        vol.scale = IntensityScale::Display8Bit;
        vol.spacing_known = false;
        let m = lung_mask(&vol);
        assert!(m.approximate);
        assert!(m.count(RIGHT) > 100 && m.count(LEFT) > 100);
    }

    #[test]
    fn eight_bit_crop_with_lungs_cut_by_the_edge_keeps_them() {
        // A MedSeg-like crop: no outside air, lungs (grey 24, MedSeg's darkest) open to the left and right
        // edges, soft tissue (200) between; black (0) only in a corner as outside air.
        let (nx, ny) = (120, 80);
        // Tissue from 60 to 200 across the image, as partial volume and fat spread a real
        // histogram (it puts Otsu's threshold mid-way, as on MedSeg slices).
        let mut v: Vec<f32> = (0..nx * ny)
            .map(|i| 60.0 + 140.0 * (i % nx) as f32 / nx as f32)
            .collect();
        for y in 10..70 {
            for x in 0..50 {
                v[y * nx + x] = 24.0;
                v[y * nx + nx - 1 - x] = 24.0;
            }
        }
        for y in 0..5 {
            for x in 55..65 {
                v[y * nx + x] = 0.0;
            }
        }
        let affine = [
            [1.0, 0.0, 0.0, 0.0],
            [0.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, 1.0, 0.0],
        ];
        let mut vol = CtVolume::new(
            v,
            [nx, ny, 1],
            [1.0, 1.0, 1.0],
            affine,
            IntensityScale::Display8Bit,
            InputKind::Image,
        );
        vol.spacing_known = false;
        let m = lung_mask(&vol);
        assert!(
            m.count(RIGHT) > 2500 && m.count(LEFT) > 2500,
            "{} {}",
            m.count(RIGHT),
            m.count(LEFT)
        );
    }

    #[test]
    fn no_air_no_lung() {
        let mut vol = chest([32, 32, 2], false);
        vol.voxels.iter_mut().for_each(|v| *v = 30.0);
        let m = lung_mask(&vol);
        assert_eq!(m.count(RIGHT) + m.count(LEFT), 0);
    }
}
