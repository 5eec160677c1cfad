//! DICOM series through dicom-rs (`dicom-object`, `dicom-pixeldata`, pure-Rust codecs that
//! build for wasm32: JPEG baseline/lossless, JPEG 2000 via the OpenJPEG Rust port, RLE, deflate).
//!
//! Files are grouped by SeriesInstanceUID; the CT series with the most slices is loaded and the
//! others are listed. Slices are ordered by ImagePositionPatient projected on the slice normal
//! (InstanceNumber when positions are missing), and the slice spacing comes from those positions,
//! not from SliceThickness, which is the reconstructed thickness and may overlap or leave gaps.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use dicom_core::dictionary::DataDictionary;
use dicom_dictionary_std::{StandardDataDictionary, tags};
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::{DefaultDicomObject, OpenFileOptions, Tag};
use dicom_pixeldata::PixelDecoder;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use super::{AxisMap, CtVolume, InputKind, IntensityScale, Limits, SeriesSummary, VolumeMeta};
use crate::error::{Error, Result};

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

/// What the header of one file says, read without its pixel data.
#[derive(Debug, Clone)]
struct SliceHeader {
    file: usize,
    series_uid: String,
    modality: Option<String>,
    description: Option<String>,
    study_date: Option<String>,
    study_uid: Option<String>,
    frame_of_reference_uid: Option<String>,
    sop_instance_uid: Option<String>,
    transfer_syntax: String,
    rows: u32,
    cols: u32,
    samples_per_pixel: u16,
    frames: u32,
    position: Option<[f64; 3]>,
    orientation: Option<[f64; 6]>,
    pixel_spacing: Option<[f64; 2]>,
    slice_thickness: Option<f64>,
    spacing_between: Option<f64>,
    instance_number: Option<i64>,
    sop_class_uid: Option<String>,
    patient_study: Vec<(u16, u16, String, String)>,
}

fn text(obj: &DefaultDicomObject, tag: Tag) -> Option<String> {
    let e = obj.element_opt(tag).ok()??;
    let s = e.to_str().ok()?;
    let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!s.is_empty()).then(|| s.to_string())
}

fn floats(obj: &DefaultDicomObject, tag: Tag) -> Option<Vec<f64>> {
    let e = obj.element_opt(tag).ok()??;
    let v = e.to_multi_float64().ok()?;
    v.iter().all(|x| x.is_finite()).then_some(v)
}

fn int(obj: &DefaultDicomObject, tag: Tag) -> Option<i64> {
    obj.element_opt(tag).ok()??.to_int::<i64>().ok()
}

/// Check that no top-level element declares more bytes than the file holds, before dicom-rs
/// sees the file. Without it, a 100-byte file declaring a 4 GB string made the parser reserve
/// and fill gigabytes (found by fuzzing): a crash of the page under wasm32's 4 GiB. Elements of
/// undefined length (sequences, encapsulated pixel data) end the scan; what follows them is
/// left to the parser.
fn check_declared_lengths(bytes: &[u8]) -> std::result::Result<(), String> {
    // dicom-rs reads a VR it does not know as UN, with a 4-byte length after two reserved
    // bytes; so only the VRs known to carry a 2-byte length are short here, and every other pair
    // of bytes is long, as the parser will read it (a fuzzed file with VR "\0\0" declaring
    // 4 GB this way got past a scan that treated unknown VRs as short).
    let explicit_long = |vr: &[u8]| {
        !matches!(
            vr,
            b"AE"
                | b"AS"
                | b"AT"
                | b"CS"
                | b"DA"
                | b"DS"
                | b"DT"
                | b"FL"
                | b"FD"
                | b"IS"
                | b"LO"
                | b"LT"
                | b"PN"
                | b"SH"
                | b"SL"
                | b"SS"
                | b"ST"
                | b"TM"
                | b"UI"
                | b"UL"
                | b"US"
        )
    };
    let u16le = |b: &[u8]| u16::from_le_bytes([b[0], b[1]]) as u64;
    let u32le = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64;
    let n = bytes.len() as u64;
    let mut pos: u64 = if bytes.len() >= 132 && &bytes[128..132] == b"DICM" {
        132
    } else if bytes.starts_with(b"DICM") {
        4
    } else {
        0
    };
    let mut ts = String::new();
    // File meta group: always explicit VR little endian.
    while pos + 8 <= n {
        let p = pos as usize;
        let (group, elem) = (u16le(&bytes[p..]), u16le(&bytes[p + 2..]));
        if group != 0x0002 {
            break;
        }
        let vr = &bytes[p + 4..p + 6];
        // The file meta elements have fixed VRs; dicom-rs reads them by tag, so a wrong VR
        // would make it size a value from bytes this scan reads differently.
        let expected: Option<&[u8]> = match elem {
            0x0000 => Some(b"UL"),
            0x0001 | 0x0102 => Some(b"OB"),
            0x0002 | 0x0003 | 0x0010 | 0x0012 | 0x0100 => Some(b"UI"),
            0x0013 => Some(b"SH"),
            0x0016..=0x0018 => Some(b"AE"),
            0x0026..=0x0028 => Some(b"UR"),
            _ => None,
        };
        if let Some(want) = expected
            && vr != want
        {
            return Err(format!(
                "element (0002,{elem:04X}) has VR {:?}, expected {}",
                String::from_utf8_lossy(vr),
                String::from_utf8_lossy(want)
            ));
        }
        let (len, head) = if explicit_long(vr) {
            if pos + 12 > n {
                return Err("the file meta header is truncated".into());
            }
            (u32le(&bytes[p + 8..]), 12)
        } else {
            (u16le(&bytes[p + 6..]), 8)
        };
        if len == 0xFFFF_FFFF {
            return Ok(());
        }
        if pos + head + len > n {
            return Err(format!(
                "element (0002,{elem:04X}) declares {len} bytes but only {} remain",
                n.saturating_sub(pos + head)
            ));
        }
        if elem == 0x0010 {
            let v = &bytes[(pos + head) as usize..(pos + head + len) as usize];
            ts = String::from_utf8_lossy(v)
                .trim_end_matches(['\0', ' '])
                .to_string();
        }
        pos += head + len;
    }
    let (implicit, big) = match ts.as_str() {
        "1.2.840.10008.1.2" => (true, false),
        "1.2.840.10008.1.2.2" => (false, true),
        // Deflated data sets cannot be scanned without inflating them.
        "1.2.840.10008.1.2.1.99" => return Ok(()),
        _ => (false, false),
    };
    let rd16 = |b: &[u8]| {
        if big {
            u16::from_be_bytes([b[0], b[1]]) as u64
        } else {
            u16le(b)
        }
    };
    let rd32 = |b: &[u8]| {
        if big {
            u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as u64
        } else {
            u32le(b)
        }
    };
    // The data set, nested sequences and items included: dicom-rs walks them element by
    // element, so every declared length met on that walk must fit in what is left of the file.
    // Items of encapsulated pixel data hold bytes, not elements: they are skipped whole.
    let mut in_fragments = false;
    while pos + 8 <= n {
        let p = pos as usize;
        let (group, elem) = (rd16(&bytes[p..]), rd16(&bytes[p + 2..]));
        if group == 0xFFFE {
            // Item, item delimiter, sequence delimiter: tag and a 4-byte length, no VR.
            let len = rd32(&bytes[p + 4..]);
            pos += 8;
            match elem {
                0xE0DD => in_fragments = false,
                0xE000 if len != 0xFFFF_FFFF => {
                    if pos + len > n {
                        return Err(format!(
                            "an item declares {len} bytes but only {} remain",
                            n - pos
                        ));
                    }
                    if in_fragments {
                        pos += len;
                    }
                }
                _ => {}
            }
            continue;
        }
        let (len, head, vr) = if implicit {
            let vr = StandardDataDictionary
                .by_tag(Tag(group as u16, elem as u16))
                .map(|e| e.vr.relaxed());
            (rd32(&bytes[p + 4..]), 8, vr)
        } else {
            let vr_bytes = &bytes[p + 4..p + 6];
            let vr = std::str::from_utf8(vr_bytes)
                .ok()
                .and_then(|v| v.parse::<dicom_core::VR>().ok());
            if explicit_long(vr_bytes) {
                if pos + 12 > n {
                    return Ok(());
                }
                (rd32(&bytes[p + 8..]), 12, vr)
            } else {
                (rd16(&bytes[p + 6..]), 8, vr)
            }
        };
        let is_sq = vr == Some(dicom_core::VR::SQ);
        // Binary values of a fixed size: dicom-rs reads whole values only, so an FL of length 2
        // leaves it 2 bytes behind this walk and reading the next header from the wrong place
        // (a fuzzed file made it reserve 1.4 GB that way). Such lengths are invalid DICOM.
        if let Some(size) = vr.and_then(fixed_value_size)
            && len != 0xFFFF_FFFF
            && len % size != 0
        {
            return Err(format!(
                "element ({group:04X},{elem:04X}) of VR {} has length {len}, not a multiple of {size}",
                vr.map_or("?", |v| v.to_string())
            ));
        }
        if len == 0xFFFF_FFFF {
            // Undefined length: a sequence (items of elements follow) or encapsulated pixel
            // data (items of bytes follow), both closed by a sequence delimiter.
            in_fragments = !is_sq && (group, elem) == (0x7FE0, 0x0010);
            pos += head;
            continue;
        }
        if pos + head + len > n {
            return Err(format!(
                "element ({group:04X},{elem:04X}) declares {len} bytes but only {} remain",
                n.saturating_sub(pos + head)
            ));
        }
        // A sequence of defined length: its items follow, walked like the rest.
        pos += if is_sq { head } else { head + len };
    }
    Ok(())
}

/// Bytes per value of the binary VRs of fixed value size.
fn fixed_value_size(vr: dicom_core::VR) -> Option<u64> {
    use dicom_core::VR;
    match vr {
        VR::SS | VR::US | VR::OW => Some(2),
        VR::FL | VR::SL | VR::UL | VR::AT | VR::OF | VR::OL => Some(4),
        VR::FD | VR::OD | VR::SV | VR::UV | VR::OV => Some(8),
        _ => None,
    }
}

fn read_header(file: usize, name: &Path, bytes: &[u8]) -> Result<Option<SliceHeader>> {
    check_declared_lengths(bytes)
        .map_err(|e| dicom_err(name, format!("{e} (truncated or corrupt)")))?;
    let obj = OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .from_reader(Cursor::new(bytes))
        .map_err(|e| dicom_err(name, format!("cannot parse the header ({e})")))?;
    let rows = int(&obj, tags::ROWS);
    let cols = int(&obj, tags::COLUMNS);
    let (Some(rows), Some(cols)) = (rows, cols) else {
        // A DICOMDIR, report or other non-image object: nothing to load from it.
        return Ok(None);
    };
    if rows <= 0 || cols <= 0 || rows > 65535 || cols > 65535 {
        return Err(dicom_err(name, format!("invalid image size {cols}×{rows}")));
    }
    let v3 = |t| {
        floats(&obj, t)
            .filter(|v| v.len() >= 3)
            .map(|v| [v[0], v[1], v[2]])
    };
    let orientation = floats(&obj, tags::IMAGE_ORIENTATION_PATIENT)
        .filter(|v| v.len() >= 6)
        .map(|v| [v[0], v[1], v[2], v[3], v[4], v[5]]);
    let pixel_spacing = floats(&obj, tags::PIXEL_SPACING)
        .filter(|v| v.len() >= 2 && v[0] > 0.0 && v[1] > 0.0)
        .map(|v| [v[0], v[1]]);
    Ok(Some(SliceHeader {
        file,
        series_uid: text(&obj, tags::SERIES_INSTANCE_UID).unwrap_or_else(|| NO_SERIES_UID.into()),
        modality: text(&obj, tags::MODALITY),
        description: text(&obj, tags::SERIES_DESCRIPTION),
        study_date: text(&obj, tags::STUDY_DATE),
        study_uid: text(&obj, tags::STUDY_INSTANCE_UID),
        frame_of_reference_uid: text(&obj, tags::FRAME_OF_REFERENCE_UID),
        sop_instance_uid: text(&obj, tags::SOP_INSTANCE_UID),
        transfer_syntax: obj
            .meta()
            .transfer_syntax()
            .trim_end_matches('\0')
            .to_string(),
        rows: rows as u32,
        cols: cols as u32,
        samples_per_pixel: int(&obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1).clamp(0, 16) as u16,
        frames: int(&obj, tags::NUMBER_OF_FRAMES)
            .unwrap_or(1)
            .clamp(1, 100_000) as u32,
        position: v3(tags::IMAGE_POSITION_PATIENT),
        orientation,
        pixel_spacing,
        slice_thickness: floats(&obj, tags::SLICE_THICKNESS)
            .and_then(|v| v.first().copied())
            .filter(|v| *v > 0.0),
        spacing_between: floats(&obj, tags::SPACING_BETWEEN_SLICES)
            .and_then(|v| v.first().copied())
            .filter(|v| *v > 0.0),
        instance_number: int(&obj, tags::INSTANCE_NUMBER),
        sop_class_uid: text(&obj, tags::SOP_CLASS_UID),
        patient_study: [
            (tags::PATIENT_NAME, "PN"),
            (tags::PATIENT_ID, "LO"),
            (tags::PATIENT_BIRTH_DATE, "DA"),
            (tags::PATIENT_SEX, "CS"),
            (tags::STUDY_DATE, "DA"),
            (tags::STUDY_TIME, "TM"),
            (tags::STUDY_ID, "SH"),
            (tags::ACCESSION_NUMBER, "SH"),
            (tags::REFERRING_PHYSICIAN_NAME, "PN"),
            (tags::POSITION_REFERENCE_INDICATOR, "LO"),
        ]
        .iter()
        .filter_map(|(t, vr)| text(&obj, *t).map(|v| (t.0, t.1, vr.to_string(), v)))
        .collect(),
    }))
}

/// Why a series is not a CT we can analyse, if it is not.
fn not_ct_reason(h: &SliceHeader) -> Option<String> {
    if h.samples_per_pixel != 1 {
        return Some(format!(
            "a colour image ({} samples per pixel, e.g. a secondary capture or screenshot)",
            h.samples_per_pixel
        ));
    }
    match h.modality.as_deref() {
        None | Some("CT") => None,
        Some(m) => Some(format!("a {m} image (DICOM Modality {m})")),
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

/// Load a DICOM series from named files (the files may hold several series).
pub fn from_files(files: Vec<(PathBuf, Vec<u8>)>, limits: &Limits) -> Result<CtVolume> {
    let mut headers = Vec::with_capacity(files.len());
    let mut skipped = 0usize;
    for (i, (name, bytes)) in files.iter().enumerate() {
        match read_header(i, name, bytes)? {
            Some(h) => headers.push(h),
            None => skipped += 1,
        }
    }
    if headers.is_empty() {
        return Err(Error::NoSlices(format!(
            "none of the {} DICOM files holds an image",
            files.len()
        )));
    }

    // Group by series; keep the CT series with the most slices.
    let mut series: BTreeMap<String, Vec<SliceHeader>> = BTreeMap::new();
    for h in headers {
        series.entry(h.series_uid.clone()).or_default().push(h);
    }
    let chosen_uid = series
        .iter()
        .filter(|(_, hs)| hs.iter().all(|h| not_ct_reason(h).is_none()))
        .max_by_key(|(_, hs)| hs.len())
        .map(|(uid, _)| uid.clone());
    let Some(chosen_uid) = chosen_uid else {
        // Nothing CT: name the first offending file.
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
    let mut slices = series.remove(&chosen_uid).unwrap_or_default();
    let first = slices[0].clone();
    let mut warnings = Vec::new();
    if skipped > 0 {
        warnings.push(format!(
            "{skipped} DICOM file(s) without an image were ignored"
        ));
    }
    if !other_series.is_empty() {
        warnings.push(format!(
            "{} other series were found and not loaded",
            other_series.len()
        ));
    }

    // Geometry must agree across the series.
    let bad = |reason: String| Error::InconsistentGeometry {
        series: chosen_uid.clone(),
        reason,
    };
    for h in &slices {
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

    // Orientation and slice order.
    let orientation = first.orientation.unwrap_or_else(|| {
        warnings.push("no ImageOrientationPatient: axial slices assumed".into());
        [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    });
    let row_dir = [orientation[0], orientation[1], orientation[2]];
    let col_dir = [orientation[3], orientation[4], orientation[5]];
    let normal = cross(row_dir, col_dir);
    let all_positions = slices.iter().all(|h| h.position.is_some());
    let nominal_dz = first.spacing_between.or(first.slice_thickness);
    let key = |h: &SliceHeader| -> f64 {
        match h.position {
            Some(p) if all_positions => dot(p, normal),
            _ => h.instance_number.unwrap_or(h.file as i64) as f64,
        }
    };
    slices.sort_by(|a, b| key(a).total_cmp(&key(b)).then(a.file.cmp(&b.file)));
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
            return Err(bad(format!(
                "two files lie at the same position ({d:.4} mm apart): the series holds \
                 duplicates or two acquisitions"
            )));
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

    // A single multi-frame file is a stack of frames; otherwise one frame per file.
    let multi_frame = slices.len() == 1 && first.frames > 1;
    let nz = if multi_frame {
        warnings.push(format!(
            "multi-frame file: {} frames stacked {dz:.2} mm apart",
            first.frames
        ));
        first.frames as usize
    } else {
        if slices.iter().any(|h| h.frames > 1) {
            warnings.push("multi-frame files in a series: only their first frame is used".into());
        }
        slices.len()
    };
    let (nx, ny) = (first.cols as usize, first.rows as usize);
    let name0 = files[first.file].0.clone();
    let mut voxels = limits.reserve(&name0, [nx as u64, ny as u64, nz as u64])?;

    // Decode in z order, dropping each file's bytes once decoded so memory stays near one copy
    // of the volume plus one file.
    let mut files: Vec<Option<(PathBuf, Vec<u8>)>> = files.into_iter().map(Some).collect();
    let mut sop_uids = Vec::with_capacity(nz);
    let mut transfer_syntaxes = Vec::new();
    for h in &slices {
        let Some((name, bytes)) = files.get_mut(h.file).and_then(Option::take) else {
            return Err(Error::NoSlices("a slice was listed twice".into()));
        };
        let frames = if multi_frame { h.frames } else { 1 };
        decode_into(&name, &bytes, h, frames, &mut voxels)?;
        sop_uids.push(h.sop_instance_uid.clone().unwrap_or_default());
        if !transfer_syntaxes.contains(&h.transfer_syntax) {
            transfer_syntaxes.push(h.transfer_syntax.clone());
        }
    }

    let origin = if all_positions {
        slices[0].position.unwrap_or([0.0; 3])
    } else {
        first.position.unwrap_or([0.0; 3])
    };
    let col = |dir: [f64; 3], s: f64| [dir[0] * s, dir[1] * s, dir[2] * s];
    let cx = col(row_dir, pixel_spacing[1]);
    let cy = col(col_dir, pixel_spacing[0]);
    let cz = col(normal, dz);
    let affine = [
        [cx[0], cy[0], cz[0], origin[0]],
        [cx[1], cy[1], cz[1], origin[1]],
        [cx[2], cy[2], cz[2], origin[2]],
    ];
    let dims = [nx, ny, nz];
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
    if first.modality.is_none() {
        warnings.push("no Modality tag: assumed to be CT".into());
    }
    Ok(CtVolume {
        voxels,
        dims,
        spacing_mm: [pixel_spacing[1], pixel_spacing[0], dz],
        spacing_known,
        affine,
        axis_map: AxisMap::identity(dims),
        input_affine: affine,
        scale: IntensityScale::Hounsfield,
        kind: InputKind::Dicom,
        meta: VolumeMeta {
            modality: first.modality.clone(),
            series_description: first.description.clone(),
            study_date: first.study_date.clone(),
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
        },
    }
    .canonicalise())
}

/// Files stripped to a minimal header (anonymisers, research exports) can lack attributes the
/// pixel decoder requires but whose value is implied by the others; fill them in.
fn fill_minimal_header(obj: &mut DefaultDicomObject) {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    let us = |v: u16| PrimitiveValue::from(v);
    if int(obj, tags::SAMPLES_PER_PIXEL).is_none() {
        obj.put(DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, us(1)));
    }
    if text(obj, tags::PHOTOMETRIC_INTERPRETATION).is_none() {
        obj.put(DataElement::new(
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            "MONOCHROME2",
        ));
    }
    let allocated = int(obj, tags::BITS_ALLOCATED).unwrap_or_else(|| {
        obj.put(DataElement::new(tags::BITS_ALLOCATED, VR::US, us(16)));
        16
    });
    let stored = int(obj, tags::BITS_STORED).unwrap_or_else(|| {
        obj.put(DataElement::new(
            tags::BITS_STORED,
            VR::US,
            us(allocated.clamp(1, 64) as u16),
        ));
        allocated
    });
    if int(obj, tags::HIGH_BIT).is_none() {
        obj.put(DataElement::new(
            tags::HIGH_BIT,
            VR::US,
            us((stored - 1).clamp(0, 63) as u16),
        ));
    }
    if int(obj, tags::PIXEL_REPRESENTATION).is_none() {
        obj.put(DataElement::new(tags::PIXEL_REPRESENTATION, VR::US, us(0)));
    }
}

/// Decode `frames` frames of one file into HU and append them to `out`.
fn decode_into(
    name: &Path,
    bytes: &[u8],
    h: &SliceHeader,
    frames: u32,
    out: &mut Vec<f32>,
) -> Result<()> {
    let unsupported = || Error::UnsupportedTransferSyntax {
        path: name.to_path_buf(),
        uid: h.transfer_syntax.clone(),
        name: TransferSyntaxRegistry
            .get(&h.transfer_syntax)
            .map(|ts| ts.name().to_string())
            .unwrap_or_else(|| "an unknown transfer syntax".into()),
    };
    match TransferSyntaxRegistry.get(&h.transfer_syntax) {
        Some(ts) if ts.can_decode_all() => {}
        _ => return Err(unsupported()),
    }
    let mut obj = OpenFileOptions::new()
        .from_reader(Cursor::new(bytes))
        .map_err(|e| dicom_err(name, format!("cannot parse ({e})")))?;
    fill_minimal_header(&mut obj);
    let pixels = obj
        .decode_pixel_data()
        .map_err(|e| dicom_err(name, format!("cannot decode the pixel data ({e})")))?;
    if pixels.rows() != h.rows || pixels.columns() != h.cols {
        return Err(dicom_err(name, "pixel data size differs from Rows/Columns"));
    }
    // Padding (e.g. −2000 raw outside the field of view) becomes air: it is not tissue, and
    // leaving it would push the lung window and lung mask off.
    let padding = int(&obj, tags::PIXEL_PADDING_VALUE);
    let (slope, intercept) = match pixels.rescale() {
        Ok(r) if !r.is_empty() => (r[0].slope, r[0].intercept),
        _ => (1.0, 0.0),
    };
    let pad_hu = padding.map(|p| (p as f64 * slope + intercept) as f32);
    let n = (h.rows * h.cols) as usize;
    for f in 0..frames.min(pixels.number_of_frames().max(1)) {
        // The Modality LUT (RescaleSlope/Intercept) is applied here, giving HU. MONOCHROME1 is
        // not inverted: HU are physical values, only their display is inverted.
        let frame: Vec<f32> = pixels
            .to_vec_frame(f)
            .map_err(|e| dicom_err(name, format!("cannot convert frame {f} ({e})")))?;
        if frame.len() < n {
            return Err(dicom_err(name, "pixel data shorter than Rows×Columns"));
        }
        out.extend(frame[..n].iter().map(|&v| {
            if !v.is_finite() || Some(v) == pad_hu || v < AIR_HU {
                AIR_HU
            } else {
                v
            }
        }));
    }
    Ok(())
}

/// Write `vol` as an uncompressed CT series (one Explicit VR Little Endian file per slice,
/// int16 HU, positions from the affine). Used for synthetic benchmark and test inputs: real
/// scans are never written or committed.
pub fn write_series(vol: &CtVolume, series_uid: &str) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

    const CT_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
    let [nx, ny, nz] = vol.dims;
    let a = &vol.affine;
    let ([sx, sy, sz], iop) = vol.orientation();
    let ds = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.6}"))
            .collect::<Vec<_>>()
            .join("\\")
    };
    let mut out = Vec::with_capacity(nz);
    for z in 0..nz {
        let sop = format!("{series_uid}.{}", z + 1);
        let pos: Vec<f64> = (0..3).map(|r| a[r][2] * z as f64 + a[r][3]).collect();
        let pixels: Vec<i16> = vol
            .slice(z)
            .iter()
            .map(|&v| v.round().clamp(-32768.0, 32767.0) as i16)
            .collect();
        let obj = InMemDicomObject::from_element_iter([
            DataElement::new(tags::SOP_CLASS_UID, VR::UI, CT_IMAGE_STORAGE),
            DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, sop.as_str()),
            DataElement::new(tags::STUDY_INSTANCE_UID, VR::UI, format!("{series_uid}.0")),
            DataElement::new(tags::SERIES_INSTANCE_UID, VR::UI, series_uid),
            DataElement::new(tags::MODALITY, VR::CS, "CT"),
            DataElement::new(tags::SERIES_DESCRIPTION, VR::LO, "SYNTHETIC"),
            DataElement::new(tags::INSTANCE_NUMBER, VR::IS, format!("{}", z + 1)),
            DataElement::new(tags::IMAGE_POSITION_PATIENT, VR::DS, ds(&pos)),
            DataElement::new(tags::IMAGE_ORIENTATION_PATIENT, VR::DS, ds(&iop)),
            DataElement::new(tags::PIXEL_SPACING, VR::DS, ds(&[sy, sx])),
            DataElement::new(tags::SLICE_THICKNESS, VR::DS, ds(&[sz])),
            DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1u16)),
            DataElement::new(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"),
            DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(ny as u16)),
            DataElement::new(tags::COLUMNS, VR::US, PrimitiveValue::from(nx as u16)),
            DataElement::new(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16u16)),
            DataElement::new(tags::BITS_STORED, VR::US, PrimitiveValue::from(16u16)),
            DataElement::new(tags::HIGH_BIT, VR::US, PrimitiveValue::from(15u16)),
            DataElement::new(
                tags::PIXEL_REPRESENTATION,
                VR::US,
                PrimitiveValue::from(1u16),
            ),
            DataElement::new(tags::RESCALE_INTERCEPT, VR::DS, "0"),
            DataElement::new(tags::RESCALE_SLOPE, VR::DS, "1"),
            DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::I16(pixels.into())),
        ]);
        let meta = FileMetaTableBuilder::new()
            .media_storage_sop_class_uid(CT_IMAGE_STORAGE)
            .media_storage_sop_instance_uid(sop.as_str())
            .transfer_syntax("1.2.840.10008.1.2.1");
        let file = obj
            .with_meta(meta)
            .map_err(|e| Error::InvalidArgument(format!("cannot build DICOM meta: {e}")))?;
        let mut bytes = Vec::new();
        file.write_all(&mut bytes)
            .map_err(|e| Error::InvalidArgument(format!("cannot write DICOM: {e}")))?;
        out.push((PathBuf::from(format!("slice{:04}.dcm", z + 1)), bytes));
    }
    Ok(out)
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
        for (a, b) in back.voxels.iter().zip(&vol.voxels) {
            assert!((a - b.round().max(AIR_HU)).abs() < 1e-3, "{a} vs {b}");
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
