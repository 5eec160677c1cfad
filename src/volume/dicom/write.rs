//! Synthetic CT series for benchmarks and tests.

use std::path::PathBuf;

use dicom_dictionary_std::tags;

use crate::error::{Error, Result};
use crate::volume::CtVolume;

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
        let pixels = vol.slice(z);
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
