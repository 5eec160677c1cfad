//! DICOM Segmentation export (binary SEG, one segment per lesion class), referencing the input
//! series and its instances so PACS viewers (OHIF, 3D Slicer) show it over the CT.
//!
//! Written with dicom-object. Frames: for each segment, one per slice of the input, in slice
//! order; each frame references its source CT instance and carries its ImagePositionPatient.

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

use crate::error::{Error, Result};
use crate::volume::{CtVolume, InputKind, VolumeMeta};

/// Segmentation Storage.
pub const SEG_SOP_CLASS: &str = "1.2.840.10008.5.1.4.1.1.66.4";
/// CT Image Storage, assumed when the input did not say.
const CT_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2";

/// The two lesion segments: (label value in the mask, label, description).
pub const SEGMENTS: [(u8, &str, &str); 2] = [
    (
        1,
        "Ground-glass opacity",
        "ctscreen: ground-glass opacity (model output)",
    ),
    (2, "Consolidation", "ctscreen: consolidation (model output)"),
];

fn seq(tag: Tag, items: Vec<InMemDicomObject>) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
}

fn code(value: &str, scheme: &str, meaning: &str) -> InMemDicomObject {
    InMemDicomObject::from_element_iter([
        DataElement::new(tags::CODE_VALUE, VR::SH, value),
        DataElement::new(tags::CODING_SCHEME_DESIGNATOR, VR::SH, scheme),
        DataElement::new(tags::CODE_MEANING, VR::LO, meaning),
    ])
}

fn ds(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.6}"))
        .collect::<Vec<_>>()
        .join("\\")
}

/// A UID derived from the content (UUID-style `2.25.` root), so re-exporting the same result
/// gives the same UID and different results different ones, without a clock or RNG (neither is
/// dependable in wasm).
fn derived_uid(parts: &[&[u8]]) -> String {
    let mut h: [u64; 2] = [0xcbf2_9ce4_8422_2325, 0x8422_2325_cbf2_9ce4];
    for p in parts {
        for &b in *p {
            h[0] = (h[0] ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
            h[1] = (h[1] ^ (b as u64).rotate_left(7)).wrapping_mul(0x0000_0100_0000_01b3 ^ 0x9e37);
        }
        h[0] = h[0].rotate_left(17) ^ h[1];
    }
    let v = ((h[0] as u128) << 64 | h[1] as u128) >> 1;
    format!("2.25.{v}")
}

/// Today's date and time (UTC) as DICOM DA and TM, for Content Date/Time.
fn content_date_time() -> (String, String) {
    #[cfg(target_family = "wasm")]
    let secs = (js_sys::Date::now() / 1000.0) as i64;
    #[cfg(not(target_family = "wasm"))]
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    (
        format!("{y:04}{m:02}{d:02}"),
        format!("{:02}{:02}{:02}", rem / 3600, rem / 60 % 60, rem % 60),
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Build the SEG as a DICOM file (bytes). `labels` is the lesion label map of `vol` (canonical
/// order: 1 GGO, 2 consolidation). Only DICOM inputs kept in their acquired slice order can be
/// referenced frame by frame.
pub fn write_seg(vol: &CtVolume, labels: &[u8]) -> Result<Vec<u8>> {
    let bad = |m: &str| Error::InvalidArgument(format!("cannot write DICOM-SEG: {m}"));
    if vol.kind != InputKind::Dicom {
        return Err(bad("the input is not DICOM (use the NIfTI mask instead)"));
    }
    if !vol.axis_map.is_identity() {
        return Err(bad(
            "the series was reoriented for display; only axial series are supported",
        ));
    }
    let meta = &vol.meta;
    let [nx, ny, nz] = vol.dims;
    if labels.len() != nx * ny * nz || meta.sop_instance_uids.len() != nz {
        return Err(bad(
            "the mask or the instance list does not match the volume",
        ));
    }
    if meta.sop_instance_uids.iter().any(|u| u.is_empty()) {
        return Err(bad("some input slices have no SOP Instance UID"));
    }
    let series_uid = meta
        .series_uid
        .clone()
        .ok_or_else(|| bad("the input series has no Series Instance UID"))?;
    let study_uid = meta
        .study_uid
        .clone()
        .ok_or_else(|| bad("the input has no Study Instance UID"))?;
    let src_class = meta
        .sop_class_uid
        .clone()
        .unwrap_or_else(|| CT_IMAGE_STORAGE.into());

    let seg_series_uid = derived_uid(&[series_uid.as_bytes(), b"seg-series"]);
    let seg_uid = derived_uid(&[series_uid.as_bytes(), labels, b"seg-instance"]);
    let n_frames = SEGMENTS.len() * nz;
    let (bits, per_frame) = frames(vol, labels, &src_class);
    let dim_uid = derived_uid(&[seg_uid.as_bytes(), b"dimensions"]);
    let obj = InMemDicomObject::from_element_iter([
        DataElement::new(tags::SOP_CLASS_UID, VR::UI, SEG_SOP_CLASS),
        DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, seg_uid.as_str()),
        DataElement::new(tags::STUDY_INSTANCE_UID, VR::UI, study_uid.as_str()),
        DataElement::new(tags::SERIES_INSTANCE_UID, VR::UI, seg_series_uid.as_str()),
        DataElement::new(tags::MODALITY, VR::CS, "SEG"),
        DataElement::new(tags::SERIES_NUMBER, VR::IS, "901"),
        DataElement::new(tags::INSTANCE_NUMBER, VR::IS, "1"),
        DataElement::new(
            tags::SERIES_DESCRIPTION,
            VR::LO,
            "ctscreen lesions (research)",
        ),
        DataElement::new(tags::MANUFACTURER, VR::LO, "ctscreen (research software)"),
        DataElement::new(tags::MANUFACTURER_MODEL_NAME, VR::LO, "ctscreen"),
        DataElement::new(tags::SOFTWARE_VERSIONS, VR::LO, env!("CARGO_PKG_VERSION")),
        DataElement::new(tags::DEVICE_SERIAL_NUMBER, VR::LO, "0"),
        DataElement::new(tags::IMAGE_TYPE, VR::CS, "DERIVED\\PRIMARY"),
        DataElement::new(tags::CONTENT_LABEL, VR::CS, "LESIONS"),
        DataElement::new(
            tags::CONTENT_DESCRIPTION,
            VR::LO,
            "Model output; research software, not for diagnosis",
        ),
        DataElement::new(tags::CONTENT_CREATOR_NAME, VR::PN, "ctscreen^"),
        DataElement::new(tags::SEGMENTATION_TYPE, VR::CS, "BINARY"),
        DataElement::new(tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00"),
        DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1u16)),
        DataElement::new(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"),
        DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(ny as u16)),
        DataElement::new(tags::COLUMNS, VR::US, PrimitiveValue::from(nx as u16)),
        DataElement::new(tags::NUMBER_OF_FRAMES, VR::IS, n_frames.to_string()),
        DataElement::new(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(1u16)),
        DataElement::new(tags::BITS_STORED, VR::US, PrimitiveValue::from(1u16)),
        DataElement::new(tags::HIGH_BIT, VR::US, PrimitiveValue::from(0u16)),
        DataElement::new(
            tags::PIXEL_REPRESENTATION,
            VR::US,
            PrimitiveValue::from(0u16),
        ),
        seq(tags::SEGMENT_SEQUENCE, segment_sequence()),
        seq(
            tags::DIMENSION_ORGANIZATION_SEQUENCE,
            vec![InMemDicomObject::from_element_iter([DataElement::new(
                tags::DIMENSION_ORGANIZATION_UID,
                VR::UI,
                dim_uid.as_str(),
            )])],
        ),
        seq(tags::DIMENSION_INDEX_SEQUENCE, dimension_index(&dim_uid)),
        seq(
            tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE,
            vec![shared_groups(vol)],
        ),
        seq(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, per_frame),
        seq(
            tags::REFERENCED_SERIES_SEQUENCE,
            vec![InMemDicomObject::from_element_iter([
                DataElement::new(tags::SERIES_INSTANCE_UID, VR::UI, series_uid.as_str()),
                seq(
                    tags::REFERENCED_INSTANCE_SEQUENCE,
                    referenced_instances(meta, &src_class),
                ),
            ])],
        ),
        DataElement::new(tags::PIXEL_DATA, VR::OB, PrimitiveValue::from(bits)),
    ]);
    finish(obj, meta, &series_uid, &seg_uid)
}

/// The functional groups every frame shares: pixel spacing, thickness and orientation.
fn shared_groups(vol: &CtVolume) -> InMemDicomObject {
    let ([sx, sy, sz], iop) = vol.orientation();
    InMemDicomObject::from_element_iter([
        seq(
            tags::PIXEL_MEASURES_SEQUENCE,
            vec![InMemDicomObject::from_element_iter([
                DataElement::new(tags::PIXEL_SPACING, VR::DS, ds(&[sy, sx])),
                DataElement::new(tags::SLICE_THICKNESS, VR::DS, ds(&[sz])),
                DataElement::new(tags::SPACING_BETWEEN_SLICES, VR::DS, ds(&[sz])),
            ])],
        ),
        seq(
            tags::PLANE_ORIENTATION_SEQUENCE,
            vec![InMemDicomObject::from_element_iter([DataElement::new(
                tags::IMAGE_ORIENTATION_PATIENT,
                VR::DS,
                ds(&iop),
            )])],
        ),
    ])
}

/// One Referenced Instance item per source slice.
fn referenced_instances(meta: &VolumeMeta, src_class: &str) -> Vec<InMemDicomObject> {
    meta.sop_instance_uids
        .iter()
        .map(|u| {
            InMemDicomObject::from_element_iter([
                DataElement::new(tags::REFERENCED_SOP_CLASS_UID, VR::UI, src_class),
                DataElement::new(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, u.as_str()),
            ])
        })
        .collect()
}

/// The SEG's pixel data (1 bit per pixel, frames back to back, least significant bit first;
/// one frame per segment and slice) and its per-frame functional groups.
fn frames(vol: &CtVolume, labels: &[u8], src_class: &str) -> (Vec<u8>, Vec<InMemDicomObject>) {
    let meta = &vol.meta;
    let [nx, ny, nz] = vol.dims;
    let a = &vol.affine;
    let n_frames = SEGMENTS.len() * nz;
    let n2 = nx * ny;
    let mut bits = vec![0u8; (n_frames * n2).div_ceil(8).next_multiple_of(2)];
    let mut per_frame = Vec::with_capacity(n_frames);
    let mut bit = 0usize;
    for (s_index, &(value, _, _)) in SEGMENTS.iter().enumerate() {
        for z in 0..nz {
            for &l in &labels[z * n2..(z + 1) * n2] {
                if l == value {
                    bits[bit / 8] |= 1 << (bit % 8);
                }
                bit += 1;
            }
            let pos: Vec<f64> = (0..3).map(|r| a[r][2] * z as f64 + a[r][3]).collect();
            let source = InMemDicomObject::from_element_iter([
                DataElement::new(tags::REFERENCED_SOP_CLASS_UID, VR::UI, src_class),
                DataElement::new(
                    tags::REFERENCED_SOP_INSTANCE_UID,
                    VR::UI,
                    meta.sop_instance_uids[z].as_str(),
                ),
                seq(
                    tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE,
                    vec![code(
                        "121322",
                        "DCM",
                        "Source image for image processing operation",
                    )],
                ),
                // Each frame lies on its source slice's grid, pixel for pixel: readers (highdicom)
                // index the SEG by source instance only when this says so.
                DataElement::new(tags::SPATIAL_LOCATIONS_PRESERVED, VR::CS, "YES"),
            ]);
            per_frame.push(InMemDicomObject::from_element_iter([
                seq(
                    tags::DERIVATION_IMAGE_SEQUENCE,
                    vec![InMemDicomObject::from_element_iter([
                        seq(tags::SOURCE_IMAGE_SEQUENCE, vec![source]),
                        seq(
                            tags::DERIVATION_CODE_SEQUENCE,
                            vec![code("113076", "DCM", "Segmentation")],
                        ),
                    ])],
                ),
                seq(
                    tags::FRAME_CONTENT_SEQUENCE,
                    vec![InMemDicomObject::from_element_iter([DataElement::new(
                        tags::DIMENSION_INDEX_VALUES,
                        VR::UL,
                        PrimitiveValue::from([s_index as u32 + 1, z as u32 + 1]),
                    )])],
                ),
                seq(
                    tags::PLANE_POSITION_SEQUENCE,
                    vec![InMemDicomObject::from_element_iter([DataElement::new(
                        tags::IMAGE_POSITION_PATIENT,
                        VR::DS,
                        ds(&pos),
                    )])],
                ),
                seq(
                    tags::SEGMENT_IDENTIFICATION_SEQUENCE,
                    vec![InMemDicomObject::from_element_iter([DataElement::new(
                        tags::REFERENCED_SEGMENT_NUMBER,
                        VR::US,
                        PrimitiveValue::from(value as u16),
                    )])],
                ),
            ]));
        }
    }

    (bits, per_frame)
}

/// The Segment Sequence: one item per lesion class.
fn segment_sequence() -> Vec<InMemDicomObject> {
    SEGMENTS
        .iter()
        .map(|&(value, label, description)| {
            InMemDicomObject::from_element_iter([
                DataElement::new(
                    tags::SEGMENT_NUMBER,
                    VR::US,
                    PrimitiveValue::from(value as u16),
                ),
                DataElement::new(tags::SEGMENT_LABEL, VR::LO, label),
                DataElement::new(tags::SEGMENT_DESCRIPTION, VR::ST, description),
                DataElement::new(tags::SEGMENT_ALGORITHM_TYPE, VR::CS, "AUTOMATIC"),
                DataElement::new(tags::SEGMENT_ALGORITHM_NAME, VR::LO, "ctscreen"),
                seq(
                    tags::SEGMENTED_PROPERTY_CATEGORY_CODE_SEQUENCE,
                    vec![code("49755003", "SCT", "Morphologically Altered Structure")],
                ),
                seq(
                    tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE,
                    vec![code("52988006", "SCT", "Lesion")],
                ),
            ])
        })
        .collect()
}

/// The Dimension Index Sequence: frames are indexed by segment, then by plane position.
fn dimension_index(dim_uid: &str) -> Vec<InMemDicomObject> {
    let dimension = |pointer: Tag, group: Tag, label: &str| {
        InMemDicomObject::from_element_iter([
            DataElement::new(tags::DIMENSION_ORGANIZATION_UID, VR::UI, dim_uid),
            DataElement::new(
                tags::DIMENSION_INDEX_POINTER,
                VR::AT,
                PrimitiveValue::Tags(vec![pointer].into()),
            ),
            DataElement::new(
                tags::FUNCTIONAL_GROUP_POINTER,
                VR::AT,
                PrimitiveValue::Tags(vec![group].into()),
            ),
            DataElement::new(tags::DIMENSION_DESCRIPTION_LABEL, VR::LO, label),
        ])
    };
    vec![
        dimension(
            tags::REFERENCED_SEGMENT_NUMBER,
            tags::SEGMENT_IDENTIFICATION_SEQUENCE,
            "ReferencedSegmentNumber",
        ),
        dimension(
            tags::IMAGE_POSITION_PATIENT,
            tags::PLANE_POSITION_SEQUENCE,
            "ImagePositionPatient",
        ),
    ]
}

/// The Type 1 Frame of Reference, the Type 2 patient/study attributes (empty when unknown,
/// then the input's values), the content date, the file meta; encoded.
fn finish(
    mut obj: InMemDicomObject,
    meta: &VolumeMeta,
    series_uid: &str,
    seg_uid: &str,
) -> Result<Vec<u8>> {
    let bad = |m: &str| Error::InvalidArgument(format!("cannot write DICOM-SEG: {m}"));
    // Type 1 in a SEG: the input's, or (for inputs without one) one derived from the series,
    // so the plane positions still have a frame to live in.
    let frame_uid = meta
        .frame_of_reference_uid
        .clone()
        .unwrap_or_else(|| derived_uid(&[series_uid.as_bytes(), b"frame-of-reference"]));
    obj.put(DataElement::new(
        tags::FRAME_OF_REFERENCE_UID,
        VR::UI,
        frame_uid.as_str(),
    ));
    // Type 2 attributes of the Patient, General Study and Frame of Reference modules must be
    // present, empty when unknown; the input's values replace these below.
    for (tag, vr) in [
        (tags::PATIENT_NAME, VR::PN),
        (tags::PATIENT_ID, VR::LO),
        (tags::PATIENT_BIRTH_DATE, VR::DA),
        (tags::PATIENT_SEX, VR::CS),
        (tags::STUDY_DATE, VR::DA),
        (tags::STUDY_TIME, VR::TM),
        (tags::REFERRING_PHYSICIAN_NAME, VR::PN),
        (tags::STUDY_ID, VR::SH),
        (tags::ACCESSION_NUMBER, VR::SH),
        (tags::POSITION_REFERENCE_INDICATOR, VR::LO),
    ] {
        obj.put(DataElement::new(tag, vr, PrimitiveValue::Empty));
    }
    let (date, time) = content_date_time();
    obj.put(DataElement::new(tags::CONTENT_DATE, VR::DA, date));
    obj.put(DataElement::new(tags::CONTENT_TIME, VR::TM, time));
    for (g, e, vr, v) in &meta.patient_study {
        let vr = vr.parse::<VR>().unwrap_or(VR::LO);
        obj.put(DataElement::new(Tag(*g, *e), vr, v.as_str()));
    }
    let file_meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(SEG_SOP_CLASS)
        .media_storage_sop_instance_uid(seg_uid)
        .transfer_syntax("1.2.840.10008.1.2.1");
    let file = obj
        .with_meta(file_meta)
        .map_err(|e| bad(&format!("file meta: {e}")))?;
    let mut out = Vec::new();
    file.write_all(&mut out)
        .map_err(|e| bad(&format!("encoding: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::{Limits, dicom};
    use std::path::PathBuf;

    #[test]
    fn seg_reads_back_with_frames_geometry_and_references() {
        let vol = crate::phantom::chest_phantom(16, 12, 4, 5);
        let files = dicom::write_series(&vol, "1.2.826.0.1.3680043.9.7434.42").unwrap();
        let ct = dicom::from_files(files, &Limits::default()).unwrap();
        let mut labels = vec![0u8; 16 * 12 * 4];
        labels[5] = 1; // slice 0, GGO
        labels[16 * 12 * 2 + 7] = 2; // slice 2, consolidation
        let bytes = write_seg(&ct, &labels).unwrap();

        let obj = dicom_object::OpenFileOptions::new()
            .from_reader(std::io::Cursor::new(&bytes))
            .unwrap();
        let s = |t| obj.element(t).unwrap().to_str().unwrap().to_string();
        assert_eq!(s(tags::SOP_CLASS_UID), SEG_SOP_CLASS);
        assert_eq!(s(tags::MODALITY), "SEG");
        assert_eq!(
            s(tags::STUDY_INSTANCE_UID),
            ct.meta.study_uid.clone().unwrap()
        );
        assert_eq!(
            obj.element(tags::NUMBER_OF_FRAMES)
                .unwrap()
                .to_int::<u32>()
                .unwrap(),
            8
        );
        assert_eq!(
            obj.element(tags::ROWS).unwrap().to_int::<u16>().unwrap(),
            12
        );
        // Referenced series and every instance.
        let rs = obj
            .element(tags::REFERENCED_SERIES_SEQUENCE)
            .unwrap()
            .items()
            .unwrap();
        assert_eq!(
            rs[0]
                .element(tags::SERIES_INSTANCE_UID)
                .unwrap()
                .to_str()
                .unwrap(),
            "1.2.826.0.1.3680043.9.7434.42"
        );
        let inst = rs[0]
            .element(tags::REFERENCED_INSTANCE_SEQUENCE)
            .unwrap()
            .items()
            .unwrap();
        let uids: Vec<String> = inst
            .iter()
            .map(|i| {
                i.element(tags::REFERENCED_SOP_INSTANCE_UID)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(uids, ct.meta.sop_instance_uids);
        // Per-frame geometry: frame 3 (segment 1, slice 2) sits at slice 2's position.
        let frames = obj
            .element(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
            .unwrap()
            .items()
            .unwrap();
        assert_eq!(frames.len(), 8);
        let ipp = frames[2]
            .element(tags::PLANE_POSITION_SEQUENCE)
            .unwrap()
            .items()
            .unwrap()[0]
            .element(tags::IMAGE_POSITION_PATIENT)
            .unwrap()
            .to_multi_float64()
            .unwrap();
        assert!((ipp[2] - ct.slice_position_mm(2)).abs() < 1e-4, "{ipp:?}");
        // The bits: GGO pixel 5 of frame 0, consolidation pixel 7 of frame 4 + 2 = 6.
        let px = obj.element(tags::PIXEL_DATA).unwrap().to_bytes().unwrap();
        let get = |frame: usize, i: usize| {
            let b = frame * 192 + i;
            (px[b / 8] >> (b % 8)) & 1
        };
        assert_eq!(get(0, 5), 1);
        assert_eq!(get(6, 7), 1);
        assert_eq!(px.iter().map(|b| b.count_ones()).sum::<u32>(), 2);
        let _ = PathBuf::new();
    }

    #[test]
    fn content_date_from_unix_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_785), (2026, 11, 28));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn non_dicom_inputs_are_refused_with_a_reason() {
        let vol = crate::phantom::chest_phantom(8, 8, 2, 1);
        let e = write_seg(&vol, &[0; 128]).unwrap_err();
        assert!(e.to_string().contains("not DICOM"), "{e}");
    }
}
