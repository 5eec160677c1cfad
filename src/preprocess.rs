//! Preprocessing between image files and the model grid, shared by training, the CLI and the
//! browser: decode to grey, letterbox to a square grid keeping the aspect ratio, and map model
//! outputs back onto the original pixel grid.

pub use crate::volume::grey::{GreyImage, MAX_IMAGE_SIDE, decode_grey, read_grey};

/// The model's run-time grid: 256×256 (any multiple of 16 works with the network).
pub const MODEL_SIZE: usize = 256;

/// The geometry of fitting a `width`×`height` image into a `size`×`size` square, centred,
/// keeping the aspect ratio (the rest is padded with 0, i.e. black like air).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    pub width: usize,
    pub height: usize,
    pub size: usize,
    /// Model pixels per source pixel.
    pub scale: f32,
    pub off_x: f32,
    pub off_y: f32,
}

/// How to sample when resizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interp {
    Bilinear,
    /// For label maps: never invents a class between two others.
    Nearest,
}

impl Letterbox {
    pub fn new(width: usize, height: usize, size: usize) -> Self {
        let scale = size as f32 / width.max(height).max(1) as f32;
        let off_x = (size as f32 - width as f32 * scale) / 2.0;
        let off_y = (size as f32 - height as f32 * scale) / 2.0;
        Self {
            width,
            height,
            size,
            scale,
            off_x,
            off_y,
        }
    }

    /// Source image → model grid. `src` is `height×width` row-major; returns `size×size`.
    pub fn forward<T: Copy + Into<f32>>(&self, src: &[T], interp: Interp) -> Vec<f32> {
        let n = self.size;
        let mut out = vec![0.0f32; n * n];
        for v in 0..n {
            let sy = (v as f32 + 0.5 - self.off_y) / self.scale - 0.5;
            if sy < -0.5 || sy > self.height as f32 - 0.5 {
                continue;
            }
            for u in 0..n {
                let sx = (u as f32 + 0.5 - self.off_x) / self.scale - 0.5;
                if sx < -0.5 || sx > self.width as f32 - 0.5 {
                    continue;
                }
                out[v * n + u] = sample(src, self.width, self.height, sx, sy, interp);
            }
        }
        out
    }

    /// Model grid → source image grid. `map` is `size×size`; returns `height×width`.
    pub fn backward(&self, map: &[f32], interp: Interp) -> Vec<f32> {
        let mut out = vec![0.0f32; self.width * self.height];
        for y in 0..self.height {
            let v = self.off_y + (y as f32 + 0.5) * self.scale - 0.5;
            for x in 0..self.width {
                let u = self.off_x + (x as f32 + 0.5) * self.scale - 0.5;
                out[y * self.width + x] = sample(map, self.size, self.size, u, v, interp);
            }
        }
        out
    }
}

/// Sample `src` (h×w) at continuous pixel coordinates (pixel centres at integers), clamping at
/// the border.
pub fn sample<T: Copy + Into<f32>>(
    src: &[T],
    w: usize,
    h: usize,
    x: f32,
    y: f32,
    interp: Interp,
) -> f32 {
    let clamp = |v: f32, hi: usize| v.max(0.0).min((hi - 1) as f32);
    let (x, y) = (clamp(x, w), clamp(y, h));
    match interp {
        Interp::Nearest => {
            let (xi, yi) = (x.round() as usize, y.round() as usize);
            src[yi * w + xi].into()
        }
        Interp::Bilinear => {
            let (x0, y0) = (x.floor() as usize, y.floor() as usize);
            let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
            let (fx, fy) = (x - x0 as f32, y - y0 as f32);
            let p = |xx: usize, yy: usize| -> f32 { src[yy * w + xx].into() };
            let top = p(x0, y0) * (1.0 - fx) + p(x1, y0) * fx;
            let bot = p(x0, y1) * (1.0 - fx) + p(x1, y1) * fx;
            top * (1.0 - fy) + bot * fy
        }
    }
}

/// Shrink an image whose longer side exceeds `size` to the letterbox's inner size with an
/// antialiasing (triangle) filter. Bilinear sampling alone would alias a 1,600-pixel figure
/// down to 256; after this the letterbox only pads.
pub fn shrink_to_fit(img: &GreyImage, size: usize) -> std::borrow::Cow<'_, GreyImage> {
    if img.width.max(img.height) <= size {
        return std::borrow::Cow::Borrowed(img);
    }
    let scale = size as f64 / img.width.max(img.height) as f64;
    let w = ((img.width as f64 * scale).round() as u32).max(1);
    let h = ((img.height as f64 * scale).round() as u32).max(1);
    let Some(buf) =
        image::GrayImage::from_raw(img.width as u32, img.height as u32, img.pixels.clone())
    else {
        return std::borrow::Cow::Borrowed(img);
    };
    let small = image::imageops::resize(&buf, w, h, image::imageops::FilterType::Triangle);
    std::borrow::Cow::Owned(GreyImage {
        width: w as usize,
        height: h as usize,
        pixels: small.into_raw(),
    })
}

/// An 8-bit image on the model grid, still 0–255, plus the letterbox that maps the original
/// image's grid to it.
pub fn to_model_grid_u8(img: &GreyImage, size: usize) -> (Vec<f32>, Letterbox) {
    let small = shrink_to_fit(img, size);
    let grid =
        Letterbox::new(small.width, small.height, size).forward(&small.pixels, Interp::Bilinear);
    (grid, Letterbox::new(img.width, img.height, size))
}

/// An 8-bit image on the model grid with values in [0, 1], plus the letterbox that maps the
/// original image's grid to it.
pub fn to_model_grid(img: &GreyImage, size: usize) -> (Vec<f32>, Letterbox) {
    let (mut grid, lb) = to_model_grid_u8(img, size);
    for v in &mut grid {
        *v /= 255.0;
    }
    (grid, lb)
}

/// The lung window (width 1500 HU, level −600 HU): HU are mapped through it to the 8-bit range
/// the training images were published in (they were windowed by their authors, roughly so).
pub const LUNG_WINDOW: Window = Window {
    width: 1500.0,
    level: -600.0,
};

/// A display window in HU.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub width: f32,
    pub level: f32,
}

impl Window {
    /// HU → 0–255, clamped.
    pub fn to_u8(&self, hu: f32) -> u8 {
        let lo = self.level - self.width / 2.0;
        ((hu - lo) / self.width * 255.0).round().clamp(0.0, 255.0) as u8
    }
}

/// One slice of a volume as the 8-bit grey image the model was trained on: HU through the lung
/// window, 8-bit input as is. Quantising to 8 bits on purpose: the training data were 8-bit.
pub fn slice_to_grey(vol: &crate::volume::CtVolume, z: usize) -> GreyImage {
    use crate::volume::IntensityScale;
    let pixels = match vol.scale {
        IntensityScale::Hounsfield => vol
            .slice(z)
            .iter()
            .map(|&v| LUNG_WINDOW.to_u8(f32::from(v)))
            .collect(),
        IntensityScale::Display8Bit => vol
            .slice(z)
            .iter()
            .map(|&v| v.clamp(0, 255) as u8)
            .collect(),
    };
    GreyImage {
        width: vol.dims[0],
        height: vol.dims[1],
        pixels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lung_window_maps_air_and_soft_tissue() {
        assert_eq!(LUNG_WINDOW.to_u8(-1350.0), 0);
        assert_eq!(LUNG_WINDOW.to_u8(-2000.0), 0);
        assert_eq!(LUNG_WINDOW.to_u8(150.0), 255);
        assert_eq!(LUNG_WINDOW.to_u8(-600.0), 128);
    }

    #[test]
    fn letterbox_round_trip_keeps_a_label_map() {
        // A 30×20 map with a block of 1s; nearest there and back must keep every pixel.
        let (w, h) = (30, 20);
        let mut src = vec![0u8; w * h];
        for y in 5..15 {
            for x in 8..22 {
                src[y * w + x] = 1;
            }
        }
        let lb = Letterbox::new(w, h, 64);
        let grid = lb.forward(&src, Interp::Nearest);
        let back = lb.backward(&grid, Interp::Nearest);
        let back: Vec<u8> = back.iter().map(|&v| v as u8).collect();
        assert_eq!(back, src);
    }

    #[test]
    fn letterbox_pads_the_short_side_with_zero() {
        let img = GreyImage {
            width: 40,
            height: 20,
            pixels: vec![255; 800],
        };
        let (grid, lb) = to_model_grid(&img, 32);
        assert_eq!(lb.off_x, 0.0);
        assert_eq!(lb.off_y, 8.0);
        assert_eq!(grid[0], 0.0, "top padding row is black");
        assert!(
            (grid[16 * 32 + 16] - 1.0).abs() < 1e-6,
            "inside is the image"
        );
    }

    #[test]
    fn large_images_are_shrunk_with_antialiasing() {
        // A 1-pixel checkerboard averages to mid-grey when shrunk 8×, instead of aliasing to
        // black or white.
        let (w, h) = (512, 256);
        let pixels = (0..w * h)
            .map(|i| if (i % w + i / w) % 2 == 0 { 255 } else { 0 })
            .collect();
        let img = GreyImage {
            width: w,
            height: h,
            pixels,
        };
        let (grid, lb) = to_model_grid(&img, 64);
        assert_eq!((lb.width, lb.height), (512, 256));
        let centre = grid[32 * 64 + 32];
        assert!((centre - 0.5).abs() < 0.1, "{centre}");
    }
}
