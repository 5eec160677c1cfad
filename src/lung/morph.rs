//! Binary morphology and connected components on slices and volumes (masks are `u8`, row-major,
//! `[nz][ny][nx]`): the building blocks of the lung mask's steps.

use super::params::PURE_AIR_HU;

/// One connected component of candidate lung voxels.
#[derive(Debug, Clone, Copy)]
pub(super) struct Component {
    pub seed: usize,
    pub size: usize,
    pub pure_air: usize,
    pub z_min: usize,
    pub z_max: usize,
    pub z_sum: usize,
}

/// Flood the `from`-valued component containing `seed` with `to` (6-connectivity). Returns its
/// size, how many of its `values` are pure air and its extent in z. `stack` is reused.
pub(super) fn flood3d(
    m: &mut [u8],
    dims: [usize; 3],
    seed: usize,
    from: u8,
    to: u8,
    stack: &mut Vec<usize>,
    values: &[i16],
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
        c.pure_air += usize::from(f32::from(values[i]) <= PURE_AIR_HU);
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

/// Keep only the largest 4-connected region of 1-pixels in `m` (set to 1, all else 0).
/// Returns whether there was any.
pub(super) fn largest_region(m: &mut [u8], nx: usize, ny: usize) -> bool {
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
/// appending its pixels to `region` (cleared first; in no particular order). `stack` is
/// scratch. Scanline fill: a row's whole run at a time, one stack entry per run of the rows
/// above and below (the pixel-by-pixel fill was a fifth of the lung mask's time).
pub(super) fn flood2d(
    m: &mut [u8],
    nx: usize,
    ny: usize,
    seed: usize,
    (from, to): (u8, u8),
    stack: &mut Vec<usize>,
    region: &mut Vec<usize>,
) {
    debug_assert_ne!(from, to);
    region.clear();
    stack.clear();
    m[seed] = from;
    stack.push(seed);
    while let Some(i) = stack.pop() {
        if m[i] != from {
            continue;
        }
        let y = i / nx;
        let row = y * nx;
        let (mut l, mut r) = (i, i);
        while l > row && m[l - 1] == from {
            l -= 1;
        }
        while r + 1 < row + nx && m[r + 1] == from {
            r += 1;
        }
        m[l..=r].fill(to);
        region.extend(l..=r);
        for y2 in [y.checked_sub(1), (y + 1 < ny).then_some(y + 1)]
            .into_iter()
            .flatten()
        {
            let start = y2 * nx + (l - row);
            let mut in_run = false;
            for (j, &v) in (start..).zip(&m[start..=start + (r - l)]) {
                let open = v == from;
                if open && !in_run {
                    stack.push(j);
                }
                in_run = open;
            }
        }
    }
}

/// Set to 0 every 1-pixel 4-connected to the slice's edge.
pub(super) fn remove_border_connected(s: &mut [u8], nx: usize, ny: usize) {
    clear_edge_regions(s, nx, ny, &mut Vec::new(), |_| true);
}

/// For each 4-connected region of 1-pixels touching the slice's edge, set it to 0 when
/// `remove(pixels)` says so, else leave it 1. `region` is reused between calls.
pub(super) fn clear_edge_regions(
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
pub(super) fn fill_holes(s: &mut [u8], nx: usize, ny: usize) {
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
pub(super) fn erode(s: &mut [u8], scratch: &mut [u8], nx: usize, ny: usize, r: usize) {
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
pub(super) fn close(s: &mut [u8], scratch: &mut [u8], nx: usize, ny: usize, r: usize) {
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
pub(super) fn box_max(s: &mut [u8], tmp: &mut [u8], nx: usize, ny: usize, r: usize, outside: u8) {
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

/// The box `[x0, y0, x1, y1)` of the pixels of slice `sl` (rows of `nx`) equal to `label`;
/// `None` when there is none.
pub(super) fn box_of(sl: &[u8], nx: usize, label: u8) -> Option<[usize; 4]> {
    let mut b: Option<[usize; 4]> = None;
    for (y, row) in sl.chunks_exact(nx).enumerate() {
        if let (Some(l), Some(r)) = (
            row.iter().position(|&v| v == label),
            row.iter().rposition(|&v| v == label),
        ) {
            let [x0, y0, x1, _] = b.unwrap_or([l, y, r + 1, y + 1]);
            b = Some([x0.min(l), y0, x1.max(r + 1), y + 1]);
        }
    }
    b
}

/// Box `[x0, y0, x1, y1)` widened by `m` on each side, clamped to an `nx`×`ny` slice.
pub(super) fn widen([x0, y0, x1, y1]: [usize; 4], m: usize, nx: usize, ny: usize) -> [usize; 4] {
    [
        x0.saturating_sub(m),
        y0.saturating_sub(m),
        (x1 + m).min(nx),
        (y1 + m).min(ny),
    ]
}

/// The part of slice `sl` (rows of `nx`) inside box `[x0, y0, x1, y1)` as 1 where it equals
/// `label`, else 0, row by row into `out` (cleared first).
pub(super) fn crop_label(
    sl: &[u8],
    nx: usize,
    [x0, y0, x1, y1]: [usize; 4],
    label: u8,
    out: &mut Vec<u8>,
) {
    out.clear();
    for y in y0..y1 {
        out.extend(
            sl[y * nx + x0..y * nx + x1]
                .iter()
                .map(|&v| u8::from(v == label)),
        );
    }
}

/// Otsu's threshold of 0–255 values (between the two modes: air/lung vs tissue).
pub(super) fn otsu(values: &[i16]) -> f32 {
    let mut hist = [0u64; 256];
    for &v in values {
        hist[v.clamp(0, 255) as usize] += 1;
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
