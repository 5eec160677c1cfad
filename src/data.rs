//! The datasets of `../shared/data` as in-memory samples (see that folder's README).
//!
//! - MedSeg COVID (`medseg-covid/train`): image, binary lesion mask, multiclass mask
//!   (palette index 0 background, 1 ground-glass, 2 consolidation); every slice is COVID-19.
//! - Ma et al. unlabelled (`majun-unlabelled`): images for reconstruction, and Inf-Net
//!   pseudo-masks usable **only as weak labels**.
//! - UCSD COVID-CT (`ucsd-covid-ct`): `covid/`, `non-covid/`, with the official split lists.
//!
//! Nothing here is ever copied into the repository; paths come from the command line.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::preprocess::{GreyImage, read_grey};

/// Which part of a dataset to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Split {
    /// Every sample in the directory.
    #[default]
    All,
    /// The training part: official UCSD train lists; MedSeg minus the hold-back.
    Train,
    /// The validation part: official UCSD val lists; the MedSeg hold-back.
    Val,
}

/// The fixed, documented MedSeg validation hold-back: slices whose numeric file stem is a
/// multiple of 5 (0, 5, …, 55: 12 of the 50 training slices). Non-numeric stems are never held
/// back.
pub fn medseg_holdback(stem: &str) -> bool {
    stem.parse::<u64>().is_ok_and(|n| n % 5 == 0)
}

/// One labelled segmentation slice at its original size.
#[derive(Debug, Clone)]
pub struct SegItem {
    pub name: String,
    pub image: GreyImage,
    /// Binary lesion mask (0/1), same size as the image.
    pub lesion: Vec<u8>,
    /// Per-pixel class (0 background, 1 GGO, 2 consolidation), when the multiclass mask exists.
    pub classes: Option<Vec<u8>>,
}

/// One classification image.
#[derive(Debug, Clone)]
pub struct ClsItem {
    pub name: String,
    pub image: GreyImage,
    pub covid: bool,
}

/// One unlabelled slice with its weak (model-made) soft mask, 0–255, if any.
#[derive(Debug, Clone)]
pub struct UnlabelledItem {
    pub name: String,
    pub image: GreyImage,
    pub weak_mask: Option<Vec<u8>>,
}

fn is_image(p: &Path) -> bool {
    matches!(
        p.extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .as_deref(),
        Some("png" | "jpg" | "jpeg")
    )
}

/// Image files of a directory, sorted naturally (numbers by value) for a stable order.
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Err(Error::MissingDir(dir.to_path_buf()));
    }
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut files = Vec::new();
    for entry in rd {
        let p = entry.map_err(|e| Error::io(dir, e))?.path();
        if p.is_file() && is_image(&p) {
            files.push(p);
        }
    }
    files.sort_by_key(|p| natural_key(&stem(p)));
    Ok(files)
}

fn natural_key(s: &str) -> (u64, String) {
    (s.parse::<u64>().unwrap_or(u64::MAX), s.to_string())
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Find `dir/<stem>.png` (or another image extension).
fn find_by_stem(dir: &Path, stem: &str) -> Option<PathBuf> {
    ["png", "jpg", "jpeg"]
        .iter()
        .map(|e| dir.join(format!("{stem}.{e}")))
        .find(|p| p.is_file())
}

/// Decode a palette multiclass mask into class indices. The MedSeg palette is
/// 0 = black, 1 = (128,0,0), 2 = (0,128,0); the image crate expands palettes to RGB, so the
/// colour tells the index.
fn read_class_mask(path: &Path) -> Result<(usize, usize, Vec<u8>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let img = image::load_from_memory(&bytes).map_err(|e| Error::Image {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let rgb = img.to_rgb8();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    let classes = rgb
        .pixels()
        .map(|p| {
            let [r, g, _] = p.0;
            match (r > 64, g > 64) {
                (false, false) => 0,
                (true, false) => 1,
                // Green, or any other lesion colour: the denser class.
                _ => 2,
            }
        })
        .collect();
    Ok((w, h, classes))
}

/// Load a segmentation directory: `images/`, `masks-binary/` and optionally
/// `masks-multiclass/`, masks sharing the image's stem. `split` selects the MedSeg hold-back.
pub fn load_seg_dir(dir: &Path, split: Split) -> Result<Vec<SegItem>> {
    let images = list_images(&dir.join("images"))?;
    let bin_dir = dir.join("masks-binary");
    if !bin_dir.is_dir() {
        return Err(Error::MissingDir(bin_dir));
    }
    let multi_dir = dir.join("masks-multiclass");
    let mut items = Vec::new();
    for path in images {
        let name = stem(&path);
        let keep = match split {
            Split::All => true,
            Split::Val => medseg_holdback(&name),
            Split::Train => !medseg_holdback(&name),
        };
        if !keep {
            continue;
        }
        let image = read_grey(&path)?;
        let mask_path = find_by_stem(&bin_dir, &name).ok_or_else(|| Error::MaskMismatch {
            image: path.clone(),
            mask: bin_dir.join(format!("{name}.png")),
            reason: "no mask with the same file stem".into(),
        })?;
        let mask = read_grey(&mask_path)?;
        if (mask.width, mask.height) != (image.width, image.height) {
            return Err(Error::MaskMismatch {
                image: path.clone(),
                mask: mask_path,
                reason: format!(
                    "mask is {}x{} but the image is {}x{}",
                    mask.width, mask.height, image.width, image.height
                ),
            });
        }
        let lesion = mask.pixels.iter().map(|&v| u8::from(v > 127)).collect();
        let classes = match find_by_stem(&multi_dir, &name) {
            Some(mp) => {
                let (w, h, c) = read_class_mask(&mp)?;
                if (w, h) != (image.width, image.height) {
                    return Err(Error::MaskMismatch {
                        image: path.clone(),
                        mask: mp,
                        reason: format!(
                            "multiclass mask is {w}x{h} but the image is {}x{}",
                            image.width, image.height
                        ),
                    });
                }
                Some(c)
            }
            None => None,
        };
        items.push(SegItem {
            name,
            image,
            lesion,
            classes,
        });
    }
    if items.is_empty() {
        return Err(Error::EmptyDataset(dir.to_path_buf()));
    }
    Ok(items)
}

fn read_list(path: &Path) -> Result<HashSet<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

/// Load a classification directory: `covid/` and `non-covid/`. With `Train`/`Val`, the
/// official lists `splits/{train,val}CT_{COVID,NonCOVID}.txt` select the files.
pub fn load_cls_dir(dir: &Path, split: Split) -> Result<Vec<ClsItem>> {
    let mut items = Vec::new();
    for (sub, covid, list) in [("covid", true, "COVID"), ("non-covid", false, "NonCOVID")] {
        let wanted = match split {
            Split::All => None,
            Split::Train => Some(read_list(&dir.join(format!("splits/trainCT_{list}.txt")))?),
            Split::Val => Some(read_list(&dir.join(format!("splits/valCT_{list}.txt")))?),
        };
        for path in list_images(&dir.join(sub))? {
            let file = path
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            if wanted.as_ref().is_some_and(|w| !w.contains(&file)) {
                continue;
            }
            items.push(ClsItem {
                name: format!("{sub}/{file}"),
                image: read_grey(&path)?,
                covid,
            });
        }
    }
    if items.is_empty() {
        return Err(Error::EmptyDataset(dir.to_path_buf()));
    }
    Ok(items)
}

/// Up to `limit` image paths of `images_dir`, evenly spread over the sorted list (so over the
/// 20 volumes of Ma et al.).
pub fn select_unlabelled(images_dir: &Path, limit: usize) -> Result<Vec<PathBuf>> {
    let all = list_images(images_dir)?;
    let step = (all.len() as f64 / limit.max(1) as f64).max(1.0);
    let mut out = Vec::new();
    let mut i = 0.0f64;
    while (i as usize) < all.len() && out.len() < limit {
        out.push(all[i as usize].clone());
        i += step;
    }
    Ok(out)
}

/// Load up to `limit` unlabelled slices (evenly spread over the sorted list) with their weak
/// masks from `pseudo-masks/` when present.
pub fn load_unlabelled_dir(dir: &Path, limit: usize) -> Result<Vec<UnlabelledItem>> {
    let weak_dir = dir.join("pseudo-masks");
    let mut items = Vec::new();
    for path in &select_unlabelled(&dir.join("images"), limit)? {
        let name = stem(path);
        let image = read_grey(path)?;
        let weak_mask = match find_by_stem(&weak_dir, &name) {
            Some(mp) => {
                let m = read_grey(&mp)?;
                ((m.width, m.height) == (image.width, image.height)).then_some(m.pixels)
            }
            None => None,
        };
        items.push(UnlabelledItem {
            name,
            image,
            weak_mask,
        });
    }
    if items.is_empty() {
        return Err(Error::EmptyDataset(dir.to_path_buf()));
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holdback_is_every_fifth_numeric_stem() {
        let held: Vec<u64> = (0..50)
            .filter(|n| medseg_holdback(&n.to_string()))
            .collect();
        assert_eq!(held, vec![0, 5, 10, 15, 20, 25, 30, 35, 40, 45]);
        assert!(!medseg_holdback("slice_a"));
    }

    #[test]
    fn missing_directory_is_a_clear_error() {
        let err = load_seg_dir(Path::new("/nonexistent/ctscreen"), Split::All).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ctscreen"), "{err}");
    }
}
