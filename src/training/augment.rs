//! Augmentation on the CPU, per sample: random 90° rotations and flips (MedSeg and Ma et al.
//! slices arrive rotated 90° while UCSD is upright, so orientation must carry no class
//! information), small rotations, scale/crop, and intensity jitter (the three sets were
//! windowed differently, and run-time HU input is windowed differently again).

use crate::preprocess::{Interp, sample};
use crate::rng::Rng;

/// One augmented training sample on a `size`×`size` grid.
#[derive(Debug, Clone)]
pub struct Augmented {
    /// Clean image, [0, 1].
    pub image: Vec<f32>,
    /// Per-pixel class, if the source had one.
    pub classes: Option<Vec<u8>>,
    /// Weak soft lesion mask in [0, 1], if the source had one.
    pub weak: Option<Vec<f32>>,
}

/// Strength of the augmentation.
#[derive(Debug, Clone, Copy)]
pub struct AugmentParams {
    pub max_small_rotation_deg: f32,
    pub zoom: (f32, f32),
    pub max_shift: f32,
    pub contrast: (f32, f32),
    pub brightness: f32,
    pub gamma: (f32, f32),
    /// Probability of a Gaussian blur of the image (not the labels), σ uniform in
    /// `[0.3, blur_sigma]` output pixels: thick slices, soft reconstruction kernels and
    /// upsampled scanner images are blurrier than the curated crops. 0 draws nothing from the
    /// random stream, so runs without it reproduce older ones exactly.
    pub blur_p: f32,
    pub blur_sigma: f32,
}

impl Default for AugmentParams {
    fn default() -> Self {
        Self {
            max_small_rotation_deg: 12.0,
            zoom: (0.85, 1.25),
            max_shift: 0.08,
            contrast: (0.7, 1.4),
            brightness: 0.12,
            gamma: (0.6, 1.7),
            blur_p: 0.0,
            blur_sigma: 1.2,
        }
    }
}

/// Augment one source sample stored at `src_size`² (u8 image, optional class map and weak
/// mask) into a `size`² sample.
pub fn augment(
    image: &[u8],
    classes: Option<&[u8]>,
    weak: Option<&[u8]>,
    src_size: usize,
    size: usize,
    p: &AugmentParams,
    rng: &mut Rng,
) -> Augmented {
    // Output pixel centre c ∈ [-½, ½]² maps to source A·c + ½ + t (in units of the source side).
    let quarter = rng.below(4);
    let flip = rng.uniform() < 0.5;
    let theta = (rng.range(-1.0, 1.0) * p.max_small_rotation_deg).to_radians()
        + quarter as f32 * std::f32::consts::FRAC_PI_2;
    // Log-uniform zoom; zoom > 1 is a crop, and the shift then ranges over the whole source so
    // that crops cover every region.
    let zoom = rng.range(p.zoom.0.ln(), p.zoom.1.ln()).exp();
    let reach = p.max_shift + (0.5 - 0.5 / zoom).max(0.0);
    let (tx, ty) = (rng.range(-reach, reach), rng.range(-reach, reach));
    let (c, s) = (theta.cos() / zoom, theta.sin() / zoom);
    let fx = if flip { -1.0 } else { 1.0 };
    let a = [[c * fx, -s], [s * fx, c]];

    let n = size * size;
    let mut out_img = vec![0.0f32; n];
    let mut out_cls = classes.map(|_| vec![0u8; n]);
    let mut out_weak = weak.map(|_| vec![0.0f32; n]);
    let sz = src_size as f32;
    for v in 0..size {
        let cy = (v as f32 + 0.5) / size as f32 - 0.5;
        for u in 0..size {
            let cx = (u as f32 + 0.5) / size as f32 - 0.5;
            let sx = (a[0][0] * cx + a[0][1] * cy + 0.5 + tx) * sz - 0.5;
            let sy = (a[1][0] * cx + a[1][1] * cy + 0.5 + ty) * sz - 0.5;
            if sx < -0.5 || sy < -0.5 || sx > sz - 0.5 || sy > sz - 0.5 {
                continue; // outside the source: black (air), background
            }
            let i = v * size + u;
            out_img[i] = sample(image, src_size, src_size, sx, sy, Interp::Bilinear) / 255.0;
            if let (Some(dst), Some(src)) = (out_cls.as_mut(), classes) {
                dst[i] = sample(src, src_size, src_size, sx, sy, Interp::Nearest) as u8;
            }
            if let (Some(dst), Some(src)) = (out_weak.as_mut(), weak) {
                dst[i] = sample(src, src_size, src_size, sx, sy, Interp::Bilinear) / 255.0;
            }
        }
    }

    if p.blur_p > 0.0 && rng.uniform() < p.blur_p {
        let sigma = rng.range(0.3, p.blur_sigma.max(0.3));
        gaussian_blur(&mut out_img, size, sigma);
    }
    let contrast = rng.range(p.contrast.0, p.contrast.1);
    let brightness = rng.range(-p.brightness, p.brightness);
    let gamma = rng.range(p.gamma.0.ln(), p.gamma.1.ln()).exp();
    for x in &mut out_img {
        let y = ((*x - 0.5) * contrast + 0.5 + brightness).clamp(0.0, 1.0);
        *x = y.powf(gamma);
    }
    Augmented {
        image: out_img,
        classes: out_cls,
        weak: out_weak,
    }
}

/// Separable Gaussian blur of a `size`×`size` image in place, edges clamped.
pub fn gaussian_blur(img: &mut [f32], size: usize, sigma: f32) {
    let r = (3.0 * sigma).ceil().max(1.0) as usize;
    let mut k: Vec<f32> = (0..=2 * r)
        .map(|j| {
            let d = j as f32 - r as f32;
            (-d * d / (2.0 * sigma * sigma)).exp()
        })
        .collect();
    let sum: f32 = k.iter().sum();
    k.iter_mut().for_each(|w| *w /= sum);
    // 1-D pass along x (stride 1) or y (stride size) from `from` into `to`.
    let pass = |from: &[f32], to: &mut [f32], along_x: bool| {
        for y in 0..size {
            for x in 0..size {
                let pos = if along_x { x } else { y };
                let mut acc = 0.0;
                for (j, w) in k.iter().enumerate() {
                    let q = (pos + j).saturating_sub(r).min(size - 1);
                    let (qx, qy) = if along_x { (q, y) } else { (x, q) };
                    acc += w * from[qy * size + qx];
                }
                to[y * size + x] = acc;
            }
        }
    };
    let mut tmp = vec![0.0f32; img.len()];
    pass(img, &mut tmp, true);
    pass(&tmp, img, false);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_the_image_geometry() {
        // A bright square whose class map marks the same square: after any augmentation, the
        // class-1 pixels must be bright in the image (before intensity jitter makes them dimmer,
        // they stay brighter than the background).
        let s = 32;
        let mut img = vec![0u8; s * s];
        let mut cls = vec![0u8; s * s];
        for y in 8..20 {
            for x in 4..14 {
                img[y * s + x] = 255;
                cls[y * s + x] = 1;
            }
        }
        let mut rng = Rng::new(3);
        for _ in 0..20 {
            let a = augment(
                &img,
                Some(&cls),
                None,
                s,
                s,
                &AugmentParams::default(),
                &mut rng,
            );
            let c = a.classes.unwrap();
            let (mut inside, mut n_in, mut outside, mut n_out) = (0.0, 0, 0.0, 0);
            for (i, &ci) in c.iter().enumerate() {
                if ci == 1 {
                    inside += a.image[i];
                    n_in += 1;
                } else {
                    outside += a.image[i];
                    n_out += 1;
                }
            }
            assert!(n_in > 20);
            assert!(inside / n_in as f32 > outside / n_out as f32 + 0.3);
        }
    }

    #[test]
    fn all_four_orientations_occur() {
        // An asymmetric marker in one corner lands in each of the four corners over many draws.
        let s = 16;
        let mut img = vec![0u8; s * s];
        img[s + 1] = 255;
        img[s + 2] = 255;
        img[2 * s + 1] = 255;
        let mut seen = [false; 4];
        let mut rng = Rng::new(11);
        let p = AugmentParams {
            max_small_rotation_deg: 0.0,
            zoom: (1.0, 1.0),
            max_shift: 0.0,
            contrast: (1.0, 1.0),
            brightness: 0.0,
            gamma: (1.0, 1.0),
            ..AugmentParams::default()
        };
        for _ in 0..64 {
            let a = augment(&img, None, None, s, s, &p, &mut rng);
            let (mut bx, mut by, mut m) = (0, 0, -1.0);
            for (i, &v) in a.image.iter().enumerate() {
                if v > m {
                    m = v;
                    bx = i % s;
                    by = i / s;
                }
            }
            seen[usize::from(bx >= s / 2) + 2 * usize::from(by >= s / 2)] = true;
        }
        assert_eq!(seen, [true; 4]);
    }

    #[test]
    fn blur_keeps_the_mean_and_spreads_an_edge() {
        let s = 16;
        let mut img: Vec<f32> = (0..s * s)
            .map(|i| if i % s < 8 { 0.0 } else { 1.0 })
            .collect();
        let before: f32 = img.iter().sum();
        gaussian_blur(&mut img, s, 1.0);
        let after: f32 = img.iter().sum();
        assert!((before - after).abs() < 1e-3, "{before} vs {after}");
        // Across the edge the step becomes a ramp; far from it nothing changes.
        let row = &img[5 * s..6 * s];
        assert!(
            row[7] > 0.1 && row[7] < 0.5 && row[8] > 0.5 && row[8] < 0.9,
            "{row:?}"
        );
        assert!(row[0] < 1e-4 && row[15] > 1.0 - 1e-4);
        // Uniform along y: every row equal.
        assert!((img[2 * s + 7] - img[13 * s + 7]).abs() < 1e-6);
    }
}
