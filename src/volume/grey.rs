//! PNG/JPEG bytes into an 8-bit grey image: the reader of single-slice exports (under the volume
//! readers, which wrap it as a one-slice volume) and of the training images.

use std::path::Path;

use crate::alloc_cap::{reader_budget, with_budget};
use crate::error::{Error, Result};

/// Largest accepted side of a 2-D image, checked before decoding so that a forged header cannot
/// make us allocate gigabytes.
pub const MAX_IMAGE_SIDE: u32 = 8192;

/// An 8-bit grey image, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct GreyImage {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

/// Decode PNG/JPEG bytes (grey, RGB or RGBA) into grey. `name` only labels errors.
pub fn decode_grey(bytes: &[u8], name: &Path) -> Result<GreyImage> {
    if bytes.is_empty() {
        return Err(Error::Image {
            path: name.to_path_buf(),
            reason: "the file is empty".into(),
        });
    }
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::Image {
            path: name.to_path_buf(),
            reason: e.to_string(),
        })?;
    let (w, h) = reader.into_dimensions().map_err(|e| Error::Image {
        path: name.to_path_buf(),
        reason: format!("not a readable PNG/JPEG ({e})"),
    })?;
    if w == 0 || h == 0 || w > MAX_IMAGE_SIDE || h > MAX_IMAGE_SIDE {
        return Err(Error::ImageSize {
            path: name.to_path_buf(),
            width: w,
            height: h,
            max: MAX_IMAGE_SIDE,
        });
    }
    // The decoder holds at most the declared pixels (RGBA) and its input.
    let declared = (w as usize) * (h as usize) * 4;
    let (img, _) = with_budget(reader_budget(bytes.len(), declared), || {
        image::load_from_memory(bytes)
    });
    let img = img.map_err(|e| Error::Image {
        path: name.to_path_buf(),
        reason: e.to_string(),
    })?;
    // Luma of RGB(A); alpha is ignored because the figures in UCSD COVID-CT are opaque slices.
    let grey = img.to_luma8();
    Ok(GreyImage {
        width: grey.width() as usize,
        height: grey.height() as usize,
        pixels: grey.into_raw(),
    })
}

/// Read and decode an image file into grey.
pub fn read_grey(path: &Path) -> Result<GreyImage> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode_grey(&bytes, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_garbage_bytes_are_errors_not_panics() {
        assert!(decode_grey(&[], Path::new("x.png")).is_err());
        assert!(decode_grey(b"hello, not an image", Path::new("x.png")).is_err());
        // A PNG signature with a truncated header.
        assert!(
            decode_grey(
                &[0x89, b'P', b'N', b'G', 13, 10, 26, 10, 0, 0],
                Path::new("t.png")
            )
            .is_err()
        );
    }
}
