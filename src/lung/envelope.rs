//! The lesion rule's envelope: which lesion pixels outside the aerated-lung mask still count
//! (dense consolidation at the pleura, which the −320 HU threshold leaves out of the lung).

use super::morph::{box_max, box_of, crop_label};
use super::params::{ENVELOPE_MM, HULL_MARGIN_MM};
use super::{LEFT, RIGHT};

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
    let (mut side_box, mut hull_box) = (Vec::new(), Vec::new());
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
        // Both dilations inside the side's box widened by the larger radius (the hull lies in
        // the side's box): nothing reaches past it, so the same envelope as on the whole slice
        // at a fraction of the pixels (the owner of the page's volume runs this per slice).
        let Some(b) = box_of(&side, nx, 1) else {
            continue;
        };
        let [x0, y0, x1, y1] = super::morph::widen(b, r.max(r_hull), nx, ny);
        let (w, h) = (x1 - x0, y1 - y0);
        for (m, src, radius) in [(&mut side_box, &side, r), (&mut hull_box, &hull, r_hull)] {
            crop_label(src, nx, [x0, y0, x1, y1], 1, m);
            box_max(m, &mut scratch[..w * h], w, h, radius, 0);
        }
        for (y, (sr, hr)) in (y0..y1).zip(side_box.chunks_exact(w).zip(hull_box.chunks_exact(w))) {
            for ((e, &s), &h) in env[y * nx + x0..y * nx + x1].iter_mut().zip(sr).zip(hr) {
                *e |= bit * s * h;
            }
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
pub(super) fn convex_hull_rows(m: &[u8], nx: usize, ny: usize) -> Vec<Option<(usize, usize)>> {
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
