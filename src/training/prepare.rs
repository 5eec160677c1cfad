//! `ctscreen prepare-data`: a smaller copy of the training folders for moving to a GPU machine.
//! Images whose longer side exceeds the model grid are shrunk exactly as training would shrink
//! them ([`shrink_to_fit`]), so training from the copy sees the same pixels up to JPEG
//! rounding. Masks are shrunk to the same size (nearest for labels, triangle for soft masks).
//! The copy is for transport only: never commit it.

use std::path::Path;

use crate::error::{Error, Result};
use crate::preprocess::{GreyImage, read_grey, shrink_to_fit};

fn copy_file(src: &Path, dst: &Path) -> Result<()> {
    std::fs::copy(src, dst)
        .map(|_| ())
        .map_err(|e| Error::io(src, e))
}

fn write_grey(img: &GreyImage, dst: &Path) -> Result<()> {
    let ext = dst
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let file = std::fs::File::create(dst).map_err(|e| Error::io(dst, e))?;
    let mut w = std::io::BufWriter::new(file);
    let (width, height) = (img.width as u32, img.height as u32);
    let res = if ext == "jpg" || ext == "jpeg" {
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut w, 95).encode(
            &img.pixels,
            width,
            height,
            image::ExtendedColorType::L8,
        )
    } else {
        image::save_buffer_with_format(
            dst,
            &img.pixels,
            width,
            height,
            image::ExtendedColorType::L8,
            image::ImageFormat::Png,
        )
    };
    res.map_err(|e| Error::Image {
        path: dst.to_path_buf(),
        reason: e.to_string(),
    })
}

fn shrink_mask(mask: &GreyImage, w: usize, h: usize, nearest: bool) -> Result<GreyImage> {
    if (mask.width, mask.height) == (w, h) {
        return Ok(mask.clone());
    }
    let buf =
        image::GrayImage::from_raw(mask.width as u32, mask.height as u32, mask.pixels.clone())
            .ok_or_else(|| Error::InvalidArgument("mask buffer size".into()))?;
    let filter = if nearest {
        image::imageops::FilterType::Nearest
    } else {
        image::imageops::FilterType::Triangle
    };
    let small = image::imageops::resize(&buf, w as u32, h as u32, filter);
    Ok(GreyImage {
        width: w,
        height: h,
        pixels: small.into_raw(),
    })
}

/// Copy `dir` (`images/` plus optional mask folders of the same stems) shrinking as needed.
fn prepare_folder(
    src: &Path,
    dst: &Path,
    sub_images: &str,
    masks: &[(&str, bool)],
    size: usize,
    limit: Option<usize>,
) -> Result<usize> {
    let out_images = dst.join(sub_images);
    std::fs::create_dir_all(&out_images).map_err(|e| Error::io(&out_images, e))?;
    for (m, _) in masks {
        let d = dst.join(m);
        std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
    }
    let mut n = 0;
    let paths = match limit {
        Some(l) => crate::data::select_unlabelled(&src.join(sub_images), l)?,
        None => crate::data::list_images(&src.join(sub_images))?,
    };
    for path in paths {
        let Some(file) = path.file_name() else {
            continue;
        };
        let img = read_grey(&path)?;
        let small = shrink_to_fit(&img, size);
        if small.width == img.width && small.height == img.height {
            copy_file(&path, &out_images.join(file))?;
        } else {
            write_grey(&small, &out_images.join(file))?;
        }
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        for (m, nearest) in masks {
            let mp = src.join(m).join(format!("{stem}.png"));
            if !mp.is_file() {
                continue;
            }
            let dp = dst.join(m).join(format!("{stem}.png"));
            if small.width == img.width && small.height == img.height {
                copy_file(&mp, &dp)?;
            } else if *m == "masks-multiclass" {
                // Palette masks: shrink the RGB rendering with nearest so colours stay exact.
                let rgb = image::open(&mp)
                    .map_err(|e| Error::Image {
                        path: mp.clone(),
                        reason: e.to_string(),
                    })?
                    .to_rgb8();
                let small_rgb = image::imageops::resize(
                    &rgb,
                    small.width as u32,
                    small.height as u32,
                    image::imageops::FilterType::Nearest,
                );
                small_rgb.save(&dp).map_err(|e| Error::Image {
                    path: dp.clone(),
                    reason: e.to_string(),
                })?;
            } else {
                let mask = read_grey(&mp)?;
                write_grey(
                    &shrink_mask(&mask, small.width, small.height, *nearest)?,
                    &dp,
                )?;
            }
        }
        n += 1;
    }
    Ok(n)
}

/// Write a shrunk copy of the three training datasets from `src` into `dst`.
/// Only the `unlabelled` Ma et al. slices that `train --unlabelled N` would load are copied.
pub fn prepare_data(src: &Path, dst: &Path, size: usize, unlabelled: usize) -> Result<String> {
    let medseg = prepare_folder(
        &src.join("medseg-covid/train"),
        &dst.join("medseg-covid/train"),
        "images",
        &[("masks-binary", true), ("masks-multiclass", true)],
        size,
        None,
    )?;
    let unl = prepare_folder(
        &src.join("majun-unlabelled"),
        &dst.join("majun-unlabelled"),
        "images",
        &[("pseudo-masks", false)],
        size,
        Some(unlabelled),
    )?;
    let mut ucsd = 0;
    for sub in ["covid", "non-covid"] {
        ucsd += prepare_folder(
            &src.join("ucsd-covid-ct"),
            &dst.join("ucsd-covid-ct"),
            sub,
            &[],
            size,
            None,
        )?;
    }
    let splits = dst.join("ucsd-covid-ct/splits");
    std::fs::create_dir_all(&splits).map_err(|e| Error::io(&splits, e))?;
    for f in [
        "trainCT_COVID.txt",
        "trainCT_NonCOVID.txt",
        "valCT_COVID.txt",
        "valCT_NonCOVID.txt",
    ] {
        copy_file(&src.join("ucsd-covid-ct/splits").join(f), &splits.join(f))?;
    }
    Ok(format!(
        "prepared MedSeg {medseg}, Ma et al. {unl}, UCSD {ucsd} images in {}",
        dst.display()
    ))
}
