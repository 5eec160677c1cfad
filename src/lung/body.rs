//! The body outline: air outside the patient (and the table, blankets, air between the arms) is
//! not lung.

use super::morph::{clear_edge_regions, largest_region};

/// Clear from `s` (1 = dark) what lies outside the body on this slice. The body is the largest
/// 4-connected tissue region; every other pixel (dark, or tissue of the arms, table, blankets)
/// reached from the slice edge without crossing the body is outside when the whole body lies in
/// the field of view (over half the slice's border is air), and otherwise — a cropped field of
/// view, where a lung may be open to the edge — only where that region is mostly pure air (more
/// than a third of its pixels at or below `pure`); the strict rule needs `strict_ok` (HU).
/// `body` and `region` are scratch.
pub(super) fn remove_outside_body(
    s: &mut [u8],
    vals: &[i16],
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
    let air = border
        .iter()
        .filter(|&&i| f32::from(vals[i]) <= pure)
        .count();
    // Only with HU: on an 8-bit image lung can be as dark as air, and these are crops anyway.
    let inside_fov = strict_ok && air * 2 > border.len();
    clear_edge_regions(body, nx, ny, region, |r| {
        inside_fov || r.iter().filter(|&&i| f32::from(vals[i]) <= pure).count() * 3 > r.len()
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
