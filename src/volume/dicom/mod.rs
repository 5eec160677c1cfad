//! DICOM series through dicom-rs (`dicom-object`, `dicom-pixeldata`, pure-Rust codecs that
//! build for wasm32: JPEG baseline/lossless, JPEG 2000 via the OpenJPEG Rust port, RLE, deflate;
//! JPEG-LS through pure_jpegls, since dicom-pixeldata reads it only through the C CharLS).
//!
//! Files are grouped by SeriesInstanceUID; the CT series with the most slices is loaded and the
//! others are listed. Slices are ordered by ImagePositionPatient projected on the slice normal
//! (InstanceNumber when positions are missing), and the slice spacing comes from those positions,
//! not from SliceThickness, which is the reconstructed thickness and may overlap or leave gaps.

mod decode;
mod header;
mod write;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dicom_encoding::TransferSyntaxIndex;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use super::{
    AxisMap, CtVolume, InputKind, IntensityScale, Limits, SeriesSummary, SkippedFile, VolumeMeta,
};
use crate::error::{Error, Result};
use header::{SliceHeader, not_ct_reason, read_header};

pub use decode::jpeg_ls_frame;
pub use write::write_series;

/// Grouping key for files without a SeriesInstanceUID.
const NO_SERIES_UID: &str = "(no series UID)";

/// Air. Padding and values below it (outside the scanner's field of view) are set to this.
const AIR_HU: f32 = -1024.0;

fn dicom_err(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::Dicom {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// How the DICOM fuzz target turns its bytes into files: one file, or two (a series) split at a
/// position the first byte chooses. Shared with the regression test that replays the fuzzer's
/// findings, so a saved input means the same files in both.
#[doc(hidden)]
pub fn fuzz_input_as_files(data: &[u8]) -> Vec<(PathBuf, Vec<u8>)> {
    match data.first() {
        Some(&k) if k % 4 == 0 && data.len() > 2 => {
            let cut = 1 + (k as usize * 7) % (data.len() - 1);
            vec![
                (PathBuf::from("a.dcm"), data[1..cut].to_vec()),
                (PathBuf::from("b.dcm"), data[cut..].to_vec()),
            ]
        }
        _ => vec![(PathBuf::from("f.dcm"), data.to_vec())],
    }
}

/// The pixels of one DICOM file's first frame, decoded as [`from_files`] decodes a slice of a
/// series (Modality LUT, padding and air rules), or `None` for a file without an image; for
/// [`super::load_bytes_with`]'s `predecoded`, run elsewhere on the same bytes. A slice larger
/// than 4096² is not decoded here (`None`).
pub fn decode_file(name: &Path, bytes: &[u8]) -> Result<Option<Vec<i16>>> {
    let Some(h) = read_header(0, name, bytes)? else {
        return Ok(None);
    };
    // Larger than any CT slice: left to the series reader and its limits.
    if u64::from(h.rows) * u64::from(h.cols) > 4096 * 4096 {
        return Ok(None);
    }
    let mut out = Vec::new();
    out.try_reserve_exact(h.rows as usize * h.cols as usize)
        .map_err(|_| dicom_err(name, "no memory for its pixels"))?;
    decode::decode_into(name, bytes, &h, 1, &mut out)?;
    Ok(Some(out))
}

/// Voxels a DICOM file's header declares (rows × columns × frames), 0 for anything else: what
/// decoding it elsewhere costs at most.
pub fn header_voxels(name: &Path, bytes: &[u8]) -> u64 {
    match read_header(0, name, bytes) {
        Ok(Some(h)) => u64::from(h.rows) * u64::from(h.cols) * u64::from(h.frames.max(1)),
        _ => 0,
    }
}

/// Load a DICOM series from named files (the files may hold several series): headers, the
/// series to load, its geometry, the slice order and spacing, then the pixels in z order.
pub fn from_files(files: Vec<(PathBuf, Vec<u8>)>, limits: &Limits) -> Result<CtVolume> {
    from_files_with(files, limits, &mut |_| None)
}

/// [`from_files`], with single-frame files' pixels from `predecoded` where it has them (see
/// [`super::load_bytes_with`]).
pub fn from_files_with(
    files: Vec<(PathBuf, Vec<u8>)>,
    limits: &Limits,
    predecoded: super::Predecoded,
) -> Result<CtVolume> {
    // One damaged file does not sink a series: it is skipped and named, as PACS viewers do.
    let mut headers = Vec::with_capacity(files.len());
    let mut skipped = 0usize;
    let mut damaged: Vec<SkippedFile> = Vec::new();
    let mut first_error = None;
    for (i, (name, bytes)) in files.iter().enumerate() {
        match read_header(i, name, bytes) {
            Ok(Some(h)) => headers.push(h),
            Ok(None) => skipped += 1,
            Err(e) => {
                damaged.push(SkippedFile::from_error(name, &e));
                first_error.get_or_insert(e);
            }
        }
    }
    if headers.is_empty() {
        return Err(first_error.unwrap_or_else(|| {
            Error::NoSlices(format!(
                "none of the {} DICOM files holds an image",
                files.len()
            ))
        }));
    }
    let (chosen_uid, mut slices, other_series) = choose_series(headers, &files)?;
    let mut warnings = Vec::new();
    if skipped > 0 {
        warnings.push(format!(
            "{skipped} DICOM file(s) without an image were ignored"
        ));
    }
    if !other_series.is_empty() {
        let listed: Vec<String> = other_series
            .iter()
            .take(4)
            .map(|s| {
                format!(
                    "{} ({}, {} file(s))",
                    s.description.as_deref().unwrap_or("no description"),
                    s.modality.as_deref().unwrap_or("modality unknown"),
                    s.n_files
                )
            })
            .collect();
        warnings.push(format!(
            "{} other series were found and not loaded: {}{}",
            other_series.len(),
            listed.join("; "),
            if other_series.len() > 4 { "; …" } else { "" }
        ));
    }
    let duplicates = drop_duplicates(&mut slices, &files);
    if duplicates > 0 {
        warnings.push(format!(
            "{duplicates} duplicate file(s) of images already read (same SOP Instance UID, or \
             same bytes) were skipped"
        ));
    }
    // The first file of the series as listed (before sorting) sets the geometry all must share.
    let first = slices[0].clone();
    let display_8bit = slices.iter().all(|h| h.display_8bit);
    if display_8bit {
        warnings.push(
            "8-bit DICOM image without a Modality LUT (a screenshot or secondary capture): \
             already windowed, no Hounsfield units, so it is read as a PNG/JPEG is and the lung \
             mask is approximate"
                .into(),
        );
    }
    check_geometry(&slices, &first, &files, &chosen_uid)?;
    sort_slices(&mut slices);
    // A single multi-frame file is a stack of frames; otherwise one frame per file.
    let multi_frame = slices.len() == 1 && first.frames > 1;
    let nz = if multi_frame {
        first.frames as usize
    } else {
        slices.len()
    };
    let (nx, ny) = (first.cols as usize, first.rows as usize);
    let name0 = files[first.file].0.clone();
    let mut voxels = limits.reserve(&name0, [nx as u64, ny as u64, nz as u64])?;
    let decoded = decode_slices(files, &slices, multi_frame, &mut voxels, predecoded)?;
    let n_listed = slices.len();
    if !decoded.failed.is_empty() {
        let failed: Vec<usize> = decoded.failed.iter().map(|(file, _)| *file).collect();
        slices.retain(|h| !failed.contains(&h.file));
        voxels.shrink_to_fit();
        damaged.extend(decoded.failed.iter().map(|(_, s)| s.clone()));
    }
    let nz = if multi_frame { nz } else { slices.len() };
    let geometry = order_slices(&mut slices, &first, &chosen_uid, &mut warnings)?;
    if multi_frame {
        warnings.push(format!(
            "multi-frame file: {} frames stacked {:.2} mm apart",
            first.frames, geometry.dz
        ));
    } else if slices.iter().any(|h| h.frames > 1) {
        warnings.push("multi-frame files in a series: only their first frame is used".into());
    }
    if !damaged.is_empty() {
        warnings.push(skipped_warning(&damaged));
        if !decoded.failed.is_empty() {
            warnings.extend(gap_warnings(&slices, &geometry, n_listed));
        }
    }
    let (sop_uids, ts_name) = (decoded.sop_uids, decoded.transfer_syntaxes);
    let dims = [nx, ny, nz];
    let affine = geometry.affine();
    if first.modality.is_none() {
        warnings.push("no Modality tag: assumed to be CT".into());
    }
    Ok(CtVolume {
        voxels,
        dims,
        spacing_mm: [
            geometry.pixel_spacing[1],
            geometry.pixel_spacing[0],
            geometry.dz,
        ],
        spacing_known: geometry.spacing_known,
        affine,
        axis_map: AxisMap::identity(dims),
        input_affine: affine,
        scale: if display_8bit {
            IntensityScale::Display8Bit
        } else {
            IntensityScale::Hounsfield
        },
        kind: InputKind::Dicom,
        meta: VolumeMeta {
            modality: first.modality.clone(),
            series_description: first.description.clone(),
            study_date: first.study_date.clone(),
            convolution_kernel: first.convolution_kernel.clone(),
            series_uid: (chosen_uid != NO_SERIES_UID).then(|| chosen_uid.clone()),
            transfer_syntax: Some(ts_name),
            n_files: slices.len(),
            other_series,
            warnings,
            sop_instance_uids: sop_uids,
            study_uid: first.study_uid.clone(),
            frame_of_reference_uid: first.frame_of_reference_uid.clone(),
            sop_class_uid: first.sop_class_uid.clone(),
            patient_study: first.patient_study.clone(),
            skipped_files: damaged,
        },
    }
    .canonicalise())
}

/// Group by series and keep the CT series with the most slices: its UID, its headers and a
/// summary of the other series. Nothing CT: the first offending file is named.
fn choose_series(
    headers: Vec<SliceHeader>,
    files: &[(PathBuf, Vec<u8>)],
) -> Result<(String, Vec<SliceHeader>, Vec<SeriesSummary>)> {
    let mut series: BTreeMap<String, Vec<SliceHeader>> = BTreeMap::new();
    for h in headers {
        series.entry(h.series_uid.clone()).or_default().push(h);
    }
    // The model reads axial slices: an axial series first (a study folder often holds coronal
    // and sagittal reformats beside it, sometimes with more images), then the most images.
    let chosen_uid = series
        .iter()
        .filter(|(_, hs)| hs.iter().all(|h| not_ct_reason(h).is_none()))
        .max_by_key(|(_, hs)| (is_axial(&hs[0]), hs.len()))
        .map(|(uid, _)| uid.clone());
    let Some(chosen_uid) = chosen_uid else {
        let (h, why) = series
            .values()
            .flatten()
            .find_map(|h| not_ct_reason(h).map(|w| (h, w)))
            .ok_or_else(|| Error::NoSlices("no CT series found".into()))?;
        return Err(Error::NotCt {
            path: files[h.file].0.clone(),
            what: why,
        });
    };
    let other_series = series
        .iter()
        .filter(|(uid, _)| **uid != chosen_uid)
        .map(|(uid, hs)| SeriesSummary {
            series_uid: uid.clone(),
            n_files: hs.len(),
            modality: hs[0].modality.clone(),
            description: hs[0].description.clone(),
        })
        .collect::<Vec<_>>();
    let slices = series.remove(&chosen_uid).unwrap_or_default();
    Ok((chosen_uid, slices, other_series))
}

/// Keep each image once; returns how many files were dropped. A PACS export copied twice (a
/// DICOMDIR tree beside loose files, a folder dropped with its copy) would otherwise fail the
/// series as two slices at one position. The same image is the same SOP Instance UID, or,
/// without one, the same bytes (compared only between files of one position and length).
fn drop_duplicates(slices: &mut Vec<SliceHeader>, files: &[(PathBuf, Vec<u8>)]) -> usize {
    let mut seen_uid = std::collections::HashSet::new();
    let mut seen_bytes: BTreeMap<(Option<[u64; 3]>, usize), Vec<usize>> = BTreeMap::new();
    let listed = slices.len();
    slices.retain(|h| match &h.sop_instance_uid {
        Some(u) => seen_uid.insert(u.clone()),
        None => {
            let bytes = &files[h.file].1;
            let key = (h.position.map(|p| p.map(f64::to_bits)), bytes.len());
            let kept = seen_bytes.entry(key).or_default();
            let new = !kept.iter().any(|&f| files[f].1 == *bytes);
            if new {
                kept.push(h.file);
            }
            new
        }
    });
    listed - slices.len()
}

/// Whether the slices are axial (their normal within about 37° of the body's long axis); a
/// slice without ImageOrientationPatient counts as axial, as CT is acquired.
fn is_axial(h: &SliceHeader) -> bool {
    h.orientation.is_none_or(|o| {
        let n = [
            o[1] * o[5] - o[2] * o[4],
            o[2] * o[3] - o[0] * o[5],
            o[0] * o[4] - o[1] * o[3],
        ];
        let len = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
        len > 0.0 && n[2].abs() / len > 0.8
    })
}

/// Size, orientation and pixel spacing must agree across the series.
fn check_geometry(
    slices: &[SliceHeader],
    first: &SliceHeader,
    files: &[(PathBuf, Vec<u8>)],
    series: &str,
) -> Result<()> {
    let bad = |reason: String| Error::InconsistentGeometry {
        series: series.to_string(),
        reason,
    };
    for h in slices {
        if (h.rows, h.cols) != (first.rows, first.cols) {
            return Err(bad(format!(
                "{} is {}×{} but {} is {}×{}",
                files[h.file].0.display(),
                h.cols,
                h.rows,
                files[first.file].0.display(),
                first.cols,
                first.rows
            )));
        }
        if let (Some(a), Some(b)) = (h.orientation, first.orientation)
            && a.iter().zip(b.iter()).any(|(x, y)| (x - y).abs() > 1e-3)
        {
            return Err(bad(format!(
                "{} is tilted differently from {} (ImageOrientationPatient)",
                files[h.file].0.display(),
                files[first.file].0.display()
            )));
        }
        if let (Some(a), Some(b)) = (h.pixel_spacing, first.pixel_spacing)
            && a.iter().zip(b.iter()).any(|(x, y)| (x - y).abs() > 1e-3)
        {
            return Err(bad(format!(
                "{} has pixel spacing {:?} mm but {} has {:?} mm",
                files[h.file].0.display(),
                a,
                files[first.file].0.display(),
                b
            )));
        }
    }
    Ok(())
}

/// Where the series lies: axes, spacing and origin, from which the affine follows.
struct Geometry {
    row_dir: [f64; 3],
    col_dir: [f64; 3],
    normal: [f64; 3],
    /// Slice spacing, mm: the median step between positions along the normal.
    dz: f64,
    /// Row spacing, column spacing (DICOM order), mm.
    pixel_spacing: [f64; 2],
    spacing_known: bool,
    origin: [f64; 3],
}

impl Geometry {
    /// Voxel (x, y, z) to patient LPS mm.
    fn affine(&self) -> [[f64; 4]; 3] {
        let col = |dir: [f64; 3], s: f64| [dir[0] * s, dir[1] * s, dir[2] * s];
        let cx = col(self.row_dir, self.pixel_spacing[1]);
        let cy = col(self.col_dir, self.pixel_spacing[0]);
        let cz = col(self.normal, self.dz);
        let o = self.origin;
        [
            [cx[0], cy[0], cz[0], o[0]],
            [cx[1], cy[1], cz[1], o[1]],
            [cx[2], cy[2], cz[2], o[2]],
        ]
    }
}

/// Where a slice lies along the series: its position along the slice normal, or its
/// InstanceNumber (else its file's place) when not every slice has a position.
fn slice_key(h: &SliceHeader, normal: [f64; 3], all_positions: bool) -> f64 {
    match h.position {
        Some(p) if all_positions => dot(p, normal),
        _ => h.instance_number.unwrap_or(h.file as i64) as f64,
    }
}

/// Sort the slices along the normal of the first slice's orientation (axial when it has none).
fn sort_slices(slices: &mut [SliceHeader]) {
    let o = slices
        .first()
        .and_then(|h| h.orientation)
        .unwrap_or([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    let normal = cross([o[0], o[1], o[2]], [o[3], o[4], o[5]]);
    let all_positions = slices.iter().all(|h| h.position.is_some());
    let key = |h: &SliceHeader| slice_key(h, normal, all_positions);
    slices.sort_by(|a, b| key(a).total_cmp(&key(b)).then(a.file.cmp(&b.file)));
}

/// The geometry of the sorted slices: axes, and the spacing (the median step between
/// positions, not SliceThickness).
fn order_slices(
    slices: &mut [SliceHeader],
    first: &SliceHeader,
    series: &str,
    warnings: &mut Vec<String>,
) -> Result<Geometry> {
    let orientation = first.orientation.unwrap_or_else(|| {
        warnings.push("no ImageOrientationPatient: axial slices assumed".into());
        [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    });
    let row_dir = [orientation[0], orientation[1], orientation[2]];
    let col_dir = [orientation[3], orientation[4], orientation[5]];
    let normal = cross(row_dir, col_dir);
    let all_positions = slices.iter().all(|h| h.position.is_some());
    let nominal_dz = first.spacing_between.or(first.slice_thickness);
    let key = |h: &SliceHeader| slice_key(h, normal, all_positions);
    if !all_positions && slices.len() > 1 {
        warnings.push(
            "ImagePositionPatient missing: slices ordered by InstanceNumber, spacing from \
             the header"
                .into(),
        );
    }
    let dz = if slices.len() > 1 && all_positions {
        let mut diffs: Vec<f64> = slices.windows(2).map(|w| key(&w[1]) - key(&w[0])).collect();
        if let Some(d) = diffs.iter().find(|d| d.abs() < 1e-3) {
            return Err(Error::InconsistentGeometry {
                series: series.to_string(),
                reason: format!(
                    "two files lie at the same position ({d:.4} mm apart): the series holds \
                     duplicates or two acquisitions"
                ),
            });
        }
        diffs.sort_by(|a, b| a.total_cmp(b));
        let median = diffs[diffs.len() / 2];
        let (lo, hi) = (diffs[0], diffs[diffs.len() - 1]);
        if hi > 1.5 * lo {
            warnings.push(format!(
                "slice spacing varies from {lo:.2} to {hi:.2} mm (missing slices?); {median:.2} \
                 mm used"
            ));
        }
        median
    } else {
        nominal_dz.unwrap_or_else(|| {
            if slices.len() > 1 {
                warnings.push("no slice spacing in the header: 1 mm assumed".into());
            }
            1.0
        })
    };
    let (pixel_spacing, spacing_known) = match first.pixel_spacing {
        Some(ps) => (ps, true),
        None => {
            warnings.push("no PixelSpacing: sizes are reported in pixels, not mm or mL".into());
            ([1.0, 1.0], false)
        }
    };
    let origin = if all_positions {
        slices[0].position.unwrap_or([0.0; 3])
    } else {
        first.position.unwrap_or([0.0; 3])
    };
    Ok(Geometry {
        row_dir,
        col_dir,
        normal,
        dz,
        pixel_spacing,
        spacing_known,
        origin,
    })
}

/// What decoding the slices gave.
struct Decoded {
    /// SOP Instance UIDs of the decoded slices, in z order.
    sop_uids: Vec<String>,
    /// The transfer syntaxes met, named.
    transfer_syntaxes: String,
    /// Files whose pixels could not be decoded (file index, why), skipped.
    failed: Vec<(usize, SkippedFile)>,
}

/// Decode the slices in z order into `voxels`, dropping each file's bytes once decoded so memory
/// stays near one copy of the volume plus one file. A file that fails is skipped (its partial
/// frames taken back out); when every file fails, the first failure is the error.
fn decode_slices(
    files: Vec<(PathBuf, Vec<u8>)>,
    slices: &[SliceHeader],
    multi_frame: bool,
    voxels: &mut Vec<i16>,
    predecoded: super::Predecoded,
) -> Result<Decoded> {
    let mut files: Vec<Option<(PathBuf, Vec<u8>)>> = files.into_iter().map(Some).collect();
    let mut sop_uids = Vec::with_capacity(slices.len());
    let mut transfer_syntaxes: Vec<String> = Vec::new();
    let mut failed = Vec::new();
    let mut first_error = None;
    for h in slices {
        let Some((name, bytes)) = files.get_mut(h.file).and_then(Option::take) else {
            return Err(Error::NoSlices("a slice was listed twice".into()));
        };
        let frames = if multi_frame { h.frames } else { 1 };
        let before = voxels.len();
        // Decoded elsewhere by `decode_file` (one frame, the same header and decoder); a
        // wrong size (never, short of a caller bug) is decoded here instead.
        let elsewhere = (!multi_frame)
            .then(|| predecoded(&name))
            .flatten()
            .filter(|px| px.len() == h.rows as usize * h.cols as usize);
        if let Some(px) = elsewhere {
            voxels.extend_from_slice(&px);
        } else if let Err(e) = decode::decode_into(&name, &bytes, h, frames, voxels) {
            voxels.truncate(before);
            failed.push((h.file, SkippedFile::from_error(&name, &e)));
            first_error.get_or_insert(e);
            continue;
        }
        sop_uids.push(h.sop_instance_uid.clone().unwrap_or_default());
        if !transfer_syntaxes.contains(&h.transfer_syntax) {
            transfer_syntaxes.push(h.transfer_syntax.clone());
        }
    }
    let ts_name = transfer_syntaxes
        .iter()
        .map(|uid| {
            TransferSyntaxRegistry
                .get(uid)
                .map(|ts| format!("{} ({uid})", ts.name()))
                .unwrap_or_else(|| uid.clone())
        })
        .collect::<Vec<_>>()
        .join(", ");
    if sop_uids.is_empty()
        && let Some(e) = first_error
    {
        return Err(e);
    }
    Ok(Decoded {
        sop_uids,
        transfer_syntaxes: ts_name,
        failed,
    })
}

/// One line naming the skipped files and why.
fn skipped_warning(skipped: &[SkippedFile]) -> String {
    let names: Vec<String> = skipped
        .iter()
        .take(5)
        .map(|s| format!("{} ({})", s.file, s.reason))
        .collect();
    format!(
        "{} damaged file(s) skipped, the rest of the series was analysed: {}{}",
        skipped.len(),
        names.join("; "),
        if skipped.len() > 5 { "; …" } else { "" }
    )
}

/// Gaps the skipped slices left: steps between neighbours longer than 1.5× the slice spacing,
/// named with their position; the volume figures rest on fewer slices.
fn gap_warnings(slices: &[SliceHeader], g: &Geometry, n_listed: usize) -> Vec<String> {
    let mut out = Vec::new();
    if slices.iter().any(|h| h.position.is_none()) {
        out.push(format!(
            "the volume figures rest on {} of {} slices (positions unknown: gaps cannot be located)",
            slices.len(),
            n_listed
        ));
        return out;
    }
    let key = |h: &SliceHeader| slice_key(h, g.normal, true);
    for w in slices.windows(2) {
        let (a, b) = (key(&w[0]), key(&w[1]));
        if (b - a).abs() > 1.5 * g.dz {
            out.push(format!(
                "gap in z from {a:.1} to {b:.1} mm ({:.1} mm, {:.0} slice spacings): skipped \
                 slices leave it empty; the volume figures rest on {} of {} slices",
                (b - a).abs(),
                (b - a).abs() / g.dz,
                slices.len(),
                n_listed
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_named_dcm_is_not_parsed_as_dicom() {
        let e = super::super::load_bytes(
            vec![(PathBuf::from("notes.dcm"), b"Patient notes\n".to_vec())],
            &Limits::default(),
        )
        .unwrap_err();
        assert_eq!(e.kind(), "unknown_format", "{e}");
    }

    #[test]
    fn written_series_reads_back_in_order_whatever_the_file_order() {
        let vol = crate::phantom::chest_phantom(32, 24, 6, 3);
        let mut files = write_series(&vol, "1.2.826.0.1.3680043.9.7434.1").unwrap();
        files.reverse();
        let back = from_files(files, &Limits::default()).unwrap();
        assert_eq!(back.dims, vol.dims);
        assert!(
            (back.spacing_mm[2] - 1.25).abs() < 1e-4,
            "{:?}",
            back.spacing_mm
        );
        for (&a, &b) in back.voxels.iter().zip(&vol.voxels) {
            assert_eq!(f32::from(a), f32::from(b).max(AIR_HU), "{a} vs {b}");
        }
        for r in 0..3 {
            for c in 0..4 {
                assert!((back.affine[r][c] - vol.affine[r][c]).abs() < 1e-4);
            }
        }
    }

    #[test]
    fn truncated_dicom_is_an_error() {
        let mut bytes = vec![0u8; 128];
        bytes.extend_from_slice(b"DICM");
        bytes.extend_from_slice(&[0x02, 0x00, 0x00, 0x00, b'U', b'L', 4, 0]);
        let e = from_files(vec![(PathBuf::from("t.dcm"), bytes)], &Limits::default()).unwrap_err();
        assert_eq!(e.kind(), "dicom", "{e}");
        assert!(e.to_string().contains("t.dcm"));
    }
}
