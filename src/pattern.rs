//! Features of the lesions' pattern, computed from the lung mask and the lesion masks alone
//! (what transfers to unseen scanners: the segmentation, not the slice classifier): how many
//! lung slices are infected, both lungs or one, the subpleural share, how many lung zones, ground
//! glass against consolidation, one dominant focus or many. They feed the two-stage patient call
//! ([`crate::call`]) and are shown in the report.

use serde::Serialize;

use crate::lung::{LEFT, LungMask, RIGHT};
use crate::slices::{SliceResult, slice_in_lung};
use crate::volume::CtVolume;

/// A slice counts as infected when its lesions cover at least this share of its lung (specks of
/// a few pixels are noise, not infection).
pub const INFECTED_SLICE_LESION_SHARE: f64 = 0.01;
/// A lung (side) counts as involved when at least this share of it is lesion.
pub const SIDE_INVOLVED_SHARE: f64 = 0.002;
/// A lung zone counts as involved when at least this share of its lung is lesion.
pub const ZONE_INVOLVED_SHARE: f64 = 0.005;
/// Lesion components smaller than this (mL) are not counted as foci.
pub const MIN_FOCUS_ML: f64 = 0.1;
/// Without physical spacing, the smallest focus in pixels.
pub const MIN_FOCUS_PX: usize = 20;
/// A lesion pixel is peripheral (subpleural) when its distance to the lung's edge on the slice
/// is at most this share of the deepest point of that lung on that slice: the outer third.
pub const PERIPHERAL_DEPTH_SHARE: f64 = 1.0 / 3.0;

/// The pattern of the lesions. Fields are `None` where the input cannot tell (no lesion, one
/// slice for the zones).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct PatternFeatures {
    /// Slices that show lung, and how many of them are infected.
    pub lung_slices: usize,
    pub infected_slices: usize,
    /// `infected_slices / lung_slices`.
    pub infected_slice_share: Option<f64>,
    /// Lesion share of each lung, % (also in the report's involvement).
    pub left_pct: Option<f64>,
    pub right_pct: Option<f64>,
    /// Both lungs involved (each at least [`SIDE_INVOLVED_SHARE`] lesion).
    pub bilateral: Option<bool>,
    /// Share of the lesion pixels in the outer third of the lung (from the pleura, chest-wall
    /// and mediastinal surfaces alike). Lesions spread at random give about 0.55.
    pub peripheral_share: Option<f64>,
    /// Of six zones (upper, middle, lower third of each lung along its own craniocaudal
    /// extent), how many are involved; `None` for fewer than 5 slices.
    pub zones_involved: Option<usize>,
    /// Share of the lower zones in the lesion volume (COVID-19 favours the bases).
    pub lower_zone_share: Option<f64>,
    /// Ground-glass share of the lesion volume.
    pub ggo_share: Option<f64>,
    /// Separate lesion foci (3-D components of at least [`MIN_FOCUS_ML`]), and the largest
    /// one's share of the lesion volume.
    pub foci: Option<usize>,
    pub largest_focus_share: Option<f64>,
}

/// Work out the pattern of the lesions of the analysed `slices`.
pub fn features(vol: &CtVolume, lung: &LungMask, slices: &[SliceResult]) -> PatternFeatures {
    let [nx, ny, nz] = vol.dims;
    let n2 = nx * ny;
    let zones = ZoneBounds::of(vol, lung);
    let mut f = PatternFeatures::default();
    let (mut lesion, mut ggo, mut peripheral) = (0usize, 0usize, 0usize);
    let mut side_lung = [0usize; 2];
    let mut side_lesion = [0usize; 2];
    let mut zone_lung = [[0usize; 3]; 2];
    let mut zone_lesion = [[0usize; 3]; 2];
    let mut lesion_voxels = Bitset::new(n2 * nz);
    let mut depth = Vec::new();
    for s in slices {
        let has_lesion = s.classes.any_lesion();
        let (lung_slice, classes) = if has_lesion {
            slice_in_lung(vol, lung, s)
        } else {
            (lung.slice(vol, s.z).to_vec(), Vec::new())
        };
        let lung_px = lung_slice.iter().filter(|&&l| l != 0).count();
        if lung_px == 0 || (lung_px as f64) < crate::slices::MIN_LUNG_SHARE * n2 as f64 {
            continue;
        }
        f.lung_slices += 1;
        for (side, lab) in [(0, LEFT), (1, RIGHT)] {
            let n = lung_slice.iter().filter(|&&l| l == lab).count();
            side_lung[side] += n;
            if let Some(zone) = zones.zone(side, s.z) {
                zone_lung[side][zone] += n;
            }
        }
        if !has_lesion {
            continue;
        }
        let mut slice_lesion = 0usize;
        for side in 0..2 {
            let lab = if side == 0 { LEFT } else { RIGHT };
            let deep = side_depth(&lung_slice, lab, nx, ny, &mut depth);
            let limit = (deep as f64 * PERIPHERAL_DEPTH_SHARE).max(1.0);
            for (i, (&l, &c)) in lung_slice.iter().zip(&classes).enumerate() {
                if l != lab || c == 0 {
                    continue;
                }
                slice_lesion += 1;
                side_lesion[side] += 1;
                ggo += usize::from(c == 1);
                peripheral += usize::from(depth[i] as f64 <= limit);
                if let Some(zone) = zones.zone(side, s.z) {
                    zone_lesion[side][zone] += 1;
                }
                lesion_voxels.set(s.z * n2 + i);
            }
        }
        lesion += slice_lesion;
        if slice_lesion as f64 >= INFECTED_SLICE_LESION_SHARE * lung_px as f64 {
            f.infected_slices += 1;
        }
    }
    let share = |a: usize, b: usize| (b > 0).then(|| a as f64 / b as f64);
    f.infected_slice_share = share(f.infected_slices, f.lung_slices);
    f.left_pct = share(side_lesion[0], side_lung[0]).map(|v| 100.0 * v);
    f.right_pct = share(side_lesion[1], side_lung[1]).map(|v| 100.0 * v);
    if lesion == 0 {
        return f;
    }
    let involved = |l: usize, n: usize| n > 0 && l as f64 >= SIDE_INVOLVED_SHARE * n as f64;
    f.bilateral =
        Some(involved(side_lesion[0], side_lung[0]) && involved(side_lesion[1], side_lung[1]));
    f.peripheral_share = share(peripheral, lesion);
    f.ggo_share = share(ggo, lesion);
    if zones.usable {
        let mut n = 0;
        for side in 0..2 {
            for z in 0..3 {
                let (l, lu) = (zone_lesion[side][z], zone_lung[side][z]);
                n += usize::from(lu > 0 && l as f64 >= ZONE_INVOLVED_SHARE * lu as f64);
            }
        }
        f.zones_involved = Some(n);
        f.lower_zone_share = share(zone_lesion[0][2] + zone_lesion[1][2], lesion);
    }
    // One slice has no volume to size a focus by: pixels.
    let min_focus = match vol.voxel_ml() {
        Some(v) if v > 0.0 && nz > 1 => ((MIN_FOCUS_ML / v).ceil() as usize).max(1),
        _ => MIN_FOCUS_PX,
    };
    let sizes = components(&mut lesion_voxels, vol.dims);
    let foci: Vec<usize> = sizes.into_iter().filter(|&s| s >= min_focus).collect();
    f.foci = Some(foci.len());
    f.largest_focus_share = foci.iter().max().map(|&m| m as f64 / lesion as f64);
    f
}

/// Each lung's craniocaudal extent (slices where it is present), cut in thirds: upper, middle,
/// lower.
struct ZoneBounds {
    /// Per side (left, right): the superior-most and inferior-most slice index.
    extent: [Option<(usize, usize)>; 2],
    /// Whether z increases towards the head.
    up: bool,
    usable: bool,
}

impl ZoneBounds {
    fn of(vol: &CtVolume, lung: &LungMask) -> Self {
        let nz = vol.dims[2];
        let mut extent: [Option<(usize, usize)>; 2] = [None; 2];
        for z in 0..nz {
            let sl = lung.slice(vol, z);
            for (side, lab) in [(0, LEFT), (1, RIGHT)] {
                if sl.contains(&lab) {
                    extent[side] = Some(match extent[side] {
                        None => (z, z),
                        Some((a, b)) => (a.min(z), b.max(z)),
                    });
                }
            }
        }
        Self {
            extent,
            up: vol.affine[2][2] >= 0.0,
            usable: nz >= 5,
        }
    }

    /// 0 upper, 1 middle, 2 lower third of `side`'s lung at slice `z`.
    fn zone(&self, side: usize, z: usize) -> Option<usize> {
        let (lo, hi) = self.extent[side]?;
        if z < lo || z > hi {
            return None;
        }
        let span = (hi - lo + 1) as f64;
        // Fraction from the top (superior end) of the lung.
        let from_top = if self.up { hi - z } else { z - lo } as f64 / span;
        Some(((from_top * 3.0) as usize).min(2))
    }
}

/// The city-block-ish (3-4 chamfer) distance of each `lab` pixel to the nearest pixel outside it,
/// in `depth` (others 0); returns the deepest value. Divided by 3, a distance in pixels.
fn side_depth(labels: &[u8], lab: u8, nx: usize, ny: usize, depth: &mut Vec<u32>) -> u32 {
    const INF: u32 = u32::MAX / 2;
    depth.clear();
    depth.extend(labels.iter().map(|&l| if l == lab { INF } else { 0 }));
    let at = |d: &[u32], x: isize, y: isize| -> u32 {
        if x < 0 || y < 0 || x >= nx as isize || y >= ny as isize {
            0
        } else {
            d[y as usize * nx + x as usize]
        }
    };
    for y in 0..ny as isize {
        for x in 0..nx as isize {
            let i = y as usize * nx + x as usize;
            if depth[i] == 0 {
                continue;
            }
            let v = (at(depth, x - 1, y) + 3)
                .min(at(depth, x, y - 1) + 3)
                .min(at(depth, x - 1, y - 1) + 4)
                .min(at(depth, x + 1, y - 1) + 4);
            depth[i] = depth[i].min(v);
        }
    }
    let mut deepest = 0;
    for y in (0..ny as isize).rev() {
        for x in (0..nx as isize).rev() {
            let i = y as usize * nx + x as usize;
            if depth[i] == 0 {
                continue;
            }
            let v = (at(depth, x + 1, y) + 3)
                .min(at(depth, x, y + 1) + 3)
                .min(at(depth, x + 1, y + 1) + 4)
                .min(at(depth, x - 1, y + 1) + 4);
            depth[i] = depth[i].min(v);
            deepest = deepest.max(depth[i]);
        }
    }
    deepest
}

/// One bit per voxel: the lesion voxels of a volume without a byte each.
struct Bitset(Vec<u64>);

impl Bitset {
    fn new(n: usize) -> Self {
        Self(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        if let Some(w) = self.0.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
    }
    /// Clear bit `i`, returning whether it was set.
    fn take(&mut self, i: usize) -> bool {
        match self.0.get_mut(i / 64) {
            Some(w) if *w & (1 << (i % 64)) != 0 => {
                *w &= !(1 << (i % 64));
                true
            }
            _ => false,
        }
    }
}

/// Sizes of the 6-connected components of the set voxels (4-connected on one slice; the set
/// is emptied).
fn components(set: &mut Bitset, dims: [usize; 3]) -> Vec<usize> {
    let [nx, ny, nz] = dims;
    let n2 = nx * ny;
    let mut sizes = Vec::new();
    let mut stack = Vec::new();
    for w in 0..set.0.len() {
        while set.0[w] != 0 {
            let seed = w * 64 + set.0[w].trailing_zeros() as usize;
            set.take(seed);
            stack.push(seed);
            let mut size = 0;
            while let Some(i) = stack.pop() {
                size += 1;
                let (x, y, z) = (i % nx, (i / nx) % ny, i / n2);
                for (ok, j) in [
                    (x > 0, i.wrapping_sub(1)),
                    (x + 1 < nx, i + 1),
                    (y > 0, i.wrapping_sub(nx)),
                    (y + 1 < ny, i + nx),
                    (z > 0, i.wrapping_sub(n2)),
                    (z + 1 < nz, i + n2),
                ] {
                    if ok && set.take(j) {
                        stack.push(j);
                    }
                }
            }
            sizes.push(size);
        }
    }
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_is_zero_outside_and_grows_inwards() {
        // A 7×7 square of label 2 in a 9×9 slice.
        let (nx, ny) = (9, 9);
        let mut l = vec![0u8; nx * ny];
        for y in 1..8 {
            for x in 1..8 {
                l[y * nx + x] = 2;
            }
        }
        let mut d = Vec::new();
        let deepest = side_depth(&l, 2, nx, ny, &mut d);
        assert_eq!(d[0], 0);
        assert_eq!(d[nx + 1], 3, "edge pixel: one step from outside");
        assert_eq!(d[4 * nx + 4], 12, "centre: four steps");
        assert_eq!(deepest, 12);
    }

    #[test]
    fn components_count_separate_blobs() {
        let dims = [6, 4, 3];
        let mut set = Bitset::new(72);
        // 0, 1 on z0 and 24, 25 on z1 (same x, y: joined through z); 47 (x5 y3 z1) apart.
        for i in [0, 1, 24, 25, 47] {
            set.set(i);
        }
        let mut sizes = components(&mut set, dims);
        sizes.sort();
        assert_eq!(sizes, vec![1, 4]);
    }

    #[test]
    fn zones_run_from_the_top_of_each_lung() {
        let z = ZoneBounds {
            extent: [Some((10, 39)), None],
            up: true,
            usable: true,
        };
        assert_eq!(z.zone(0, 39), Some(0), "superior end: upper zone");
        assert_eq!(z.zone(0, 25), Some(1));
        assert_eq!(z.zone(0, 10), Some(2), "inferior end: lower zone");
        assert_eq!(z.zone(0, 5), None);
        assert_eq!(z.zone(1, 20), None);
    }
}
