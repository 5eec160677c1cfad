//! One file's header, read without its pixel data.

use std::io::Cursor;
use std::path::Path;

use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, OpenFileOptions, Tag};

use super::{NO_SERIES_UID, dicom_err};
use crate::alloc_cap::{reader_budget, with_budget};
use crate::error::Result;

/// What the header of one file says, read without its pixel data.
#[derive(Debug, Clone)]
pub(super) struct SliceHeader {
    pub file: usize,
    pub series_uid: String,
    pub modality: Option<String>,
    pub description: Option<String>,
    pub study_date: Option<String>,
    pub convolution_kernel: Option<String>,
    pub study_uid: Option<String>,
    pub frame_of_reference_uid: Option<String>,
    pub sop_instance_uid: Option<String>,
    pub transfer_syntax: String,
    pub rows: u32,
    pub cols: u32,
    pub samples_per_pixel: u16,
    pub frames: u32,
    pub position: Option<[f64; 3]>,
    pub orientation: Option<[f64; 6]>,
    pub pixel_spacing: Option<[f64; 2]>,
    pub slice_thickness: Option<f64>,
    pub spacing_between: Option<f64>,
    pub instance_number: Option<i64>,
    pub sop_class_uid: Option<String>,
    /// 8-bit grey without a Modality LUT (no RescaleSlope/Intercept): display values of an image
    /// already windowed, as a PACS screenshot or secondary capture of a CT slice holds, not HU.
    pub display_8bit: bool,
    pub patient_study: Vec<(u16, u16, String, String)>,
}

pub(super) fn text(obj: &DefaultDicomObject, tag: Tag) -> Option<String> {
    let e = obj.element_opt(tag).ok()??;
    let s = e.to_str().ok()?;
    let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!s.is_empty()).then(|| s.to_string())
}

pub(super) fn floats(obj: &DefaultDicomObject, tag: Tag) -> Option<Vec<f64>> {
    let e = obj.element_opt(tag).ok()??;
    let v = e.to_multi_float64().ok()?;
    v.iter().all(|x| x.is_finite()).then_some(v)
}

pub(super) fn int(obj: &DefaultDicomObject, tag: Tag) -> Option<i64> {
    obj.element_opt(tag).ok()??.to_int::<i64>().ok()
}

/// Read one file's header; `None` for DICOM objects without an image (a DICOMDIR, a report).
pub(super) fn read_header(file: usize, name: &Path, bytes: &[u8]) -> Result<Option<SliceHeader>> {
    // No header value is larger than the file: a forged length is refused by the budget when
    // the parser reserves it, before a byte of it is read.
    let (obj, usage) = with_budget(reader_budget(bytes.len(), 0), || {
        OpenFileOptions::new()
            .read_until(tags::PIXEL_DATA)
            .from_reader(Cursor::new(bytes))
    });
    let obj = obj.map_err(|e| dicom_err(name, header_failure(&e.to_string(), usage.refused)))?;
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
        convolution_kernel: text(&obj, tags::CONVOLUTION_KERNEL),
        display_8bit: int(&obj, tags::BITS_ALLOCATED) == Some(8)
            && floats(&obj, tags::RESCALE_SLOPE).is_none()
            && floats(&obj, tags::RESCALE_INTERCEPT).is_none(),
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

/// The reason a header could not be read; a refused allocation means the file declares more
/// than it holds.
fn header_failure(parser: &str, refused: usize) -> String {
    if refused > 0 {
        format!(
            "cannot parse the header: it declares a value larger than the file holds \
             (truncated or corrupt; {parser})"
        )
    } else {
        format!("cannot parse the header ({parser})")
    }
}

/// Why a series is not a CT we can analyse, if it is not.
pub(super) fn not_ct_reason(h: &SliceHeader) -> Option<String> {
    if h.samples_per_pixel != 1 {
        return Some(format!(
            "a colour image ({} samples per pixel, e.g. a secondary capture or screenshot)",
            h.samples_per_pixel
        ));
    }
    match h.modality.as_deref() {
        None | Some("CT") => None,
        // A slice exported from a PACS as an image ("other", secondary capture): read as the
        // 8-bit picture it is, like a PNG/JPEG.
        Some("OT" | "SC") if h.display_8bit => None,
        Some(m) => Some(format!("a {m} image (DICOM Modality {m})")),
    }
}
