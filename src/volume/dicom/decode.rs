//! Pixel data of one file into HU.

use std::io::Cursor;
use std::path::Path;

use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use dicom_pixeldata::PixelDecoder;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use super::header::{SliceHeader, int, text};
use super::{AIR_HU, dicom_err};
use crate::alloc_cap::{reader_budget, with_budget};
use crate::error::{Error, Result};
use crate::volume::quantise;

/// Files stripped to a minimal header (anonymisers, research exports) can lack attributes the
/// pixel decoder requires but whose value is implied by the others; fill them in.
pub(super) fn fill_minimal_header(obj: &mut DefaultDicomObject) {
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
pub(super) fn decode_into(
    name: &Path,
    bytes: &[u8],
    h: &SliceHeader,
    frames: u32,
    out: &mut Vec<i16>,
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
    // The decoded pixels are never larger than the frames the header declares (8 bytes a
    // sample covers every sample type, then f32): past that, a codec is being lied to. `out`
    // is reserved by the caller, so the budget covers the decoder alone.
    let declared = (h.rows as usize)
        .saturating_mul(h.cols as usize)
        .saturating_mul(frames.max(1) as usize)
        .saturating_mul(8);
    let (r, usage) = with_budget(reader_budget(bytes.len(), declared), || {
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
                quantise(if !v.is_finite() || Some(v) == pad_hu || v < AIR_HU {
                    AIR_HU
                } else {
                    v
                })
            }));
        }
        Ok(())
    });
    r.map_err(|e| match e {
        Error::Dicom { path, reason } if usage.refused > 0 => Error::Dicom {
            path,
            reason: format!("{reason}; it declares more data than it holds"),
        },
        e => e,
    })
}
