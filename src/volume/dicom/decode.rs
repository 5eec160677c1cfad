//! Pixel data of one file into HU.

use std::io::Cursor;
use std::path::Path;

use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use dicom_pixeldata::PixelDecoder;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use super::header::{SliceHeader, floats, int, text};
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
    let jpeg_ls = JPEG_LS.contains(&h.transfer_syntax.trim_end_matches(['\0', ' ']));
    match TransferSyntaxRegistry.get(&h.transfer_syntax) {
        _ if jpeg_ls => {}
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
        if jpeg_ls {
            return decode_jpeg_ls(&obj, h, frames, out).map_err(|reason| dicom_err(name, reason));
        }
        check_jpeg_frames(&obj, h).map_err(|reason| dicom_err(name, reason))?;
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
            out.extend(frame[..n].iter().map(|&v| hu_voxel(v, pad_hu)));
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

/// One voxel from a value after the Modality LUT: the pixel padding, anything not finite and
/// anything below air become air.
fn hu_voxel(hu: f32, pad_hu: Option<f32>) -> i16 {
    quantise(if !hu.is_finite() || Some(hu) == pad_hu || hu < AIR_HU {
        AIR_HU
    } else {
        hu
    })
}

/// JPEG-LS Lossless and JPEG-LS Lossy (near-lossless).
const JPEG_LS: [&str; 2] = ["1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"];

/// The frames of a JPEG-LS file as HU, appended to `out`, decoded by pure_jpegls (one
/// component, as CT is): the stored values sign-extended from BitsStored when
/// PixelRepresentation is 1, then the Modality LUT and the padding rule as for every other
/// transfer syntax.
fn decode_jpeg_ls(
    obj: &DefaultDicomObject,
    h: &SliceHeader,
    frames: u32,
    out: &mut Vec<i16>,
) -> std::result::Result<(), String> {
    let value = obj
        .element(tags::PIXEL_DATA)
        .map_err(|_| "no pixel data".to_string())?
        .value();
    let fragments = value
        .fragments()
        .ok_or("JPEG-LS pixel data is not encapsulated")?;
    let frames = frames.max(1) as usize;
    // One frame in as many fragments as the writer liked; several frames, one fragment each.
    let streams: Vec<Vec<u8>> = if frames == 1 {
        vec![fragments.concat()]
    } else if fragments.len() == frames {
        fragments.to_vec()
    } else {
        return Err(format!(
            "{} JPEG-LS fragments for {frames} frames: cannot tell the frames apart",
            fragments.len()
        ));
    };
    let (rows, cols) = (h.rows, h.cols);
    let bits = int(obj, tags::BITS_STORED).unwrap_or(16).clamp(2, 16) as u32;
    let signed = int(obj, tags::PIXEL_REPRESENTATION) == Some(1);
    let first = |tag| floats(obj, tag).and_then(|v| v.first().copied());
    let slope = first(tags::RESCALE_SLOPE).filter(|s| s.is_finite() && *s != 0.0);
    let (slope, intercept) = (
        slope.unwrap_or(1.0),
        first(tags::RESCALE_INTERCEPT)
            .filter(|v| v.is_finite())
            .unwrap_or(0.0),
    );
    let pad_hu = int(obj, tags::PIXEL_PADDING_VALUE).map(|p| (p as f64 * slope + intercept) as f32);
    for (f, stream) in streams.iter().enumerate() {
        let px = jpeg_ls_frame(stream, cols, rows)
            .map_err(|e| format!("cannot decode JPEG-LS frame {f} ({e})"))?;
        out.extend(px.iter().map(|&v| {
            let mut raw = i64::from(v) & ((1i64 << bits) - 1);
            if signed && raw >= 1 << (bits - 1) {
                raw -= 1 << bits;
            }
            hu_voxel((raw as f64 * slope + intercept) as f32, pad_hu)
        }));
    }
    Ok(())
}

/// One JPEG-LS stream of `cols`×`rows` samples (public for the fuzz target).
pub fn jpeg_ls_frame(stream: &[u8], cols: u32, rows: u32) -> std::result::Result<Vec<u16>, String> {
    let (px, w, h) = jpegls::decode(stream, cols, rows)
        .or_else(|e| {
            // T.87 lets fill bytes (0xFF) precede a marker, and CharLS-based writers (dcmtk)
            // leave one before EOI when the scan's last byte is 0xFF; pure_jpegls expects EOI
            // right after the scan. Tried again without them (only after a failure: had the
            // scan needed that byte, the first try would have read it).
            let end = stream.iter().rposition(|&b| b == 0xD9).unwrap_or(0);
            let mut start = end;
            while start >= 2 && stream[start - 1] == 0xFF && stream[start - 2] == 0xFF {
                start -= 1;
            }
            if start == end {
                return Err(e);
            }
            let mut fixed = stream[..start].to_vec();
            fixed.extend_from_slice(&stream[end..]);
            jpegls::decode(&fixed, cols, rows).map_err(|_| e)
        })
        .map_err(|e| e.to_string())?;
    if (w, h) != (cols, rows) || px.len() != rows as usize * cols as usize {
        return Err(format!(
            "the stream is {w}×{h}, not Rows×Columns {cols}×{rows}"
        ));
    }
    Ok(px)
}

/// Refuse encapsulated JPEG frames whose own frame header (SOF) declares another size than the
/// DICOM header: jpeg-decoder sizes its buffers from the SOF with infallible allocations, so a
/// forged 512×21581 lossless frame in a 512×512 slice (a fuzz finding) asked for 44 MB past the
/// reader's budget and aborted the process instead of failing the file. The standard requires
/// the two to agree, so nothing valid is refused.
fn check_jpeg_frames(obj: &DefaultDicomObject, h: &SliceHeader) -> std::result::Result<(), String> {
    let Ok(Some(elem)) = obj.element_opt(tags::PIXEL_DATA) else {
        return Ok(());
    };
    let Some(fragments) = elem.value().fragments() else {
        return Ok(());
    };
    for frag in fragments.iter().filter(|f| f.starts_with(&[0xFF, 0xD8])) {
        for (rows, cols, comps) in jpeg_frame_headers(frag) {
            if u32::from(rows) != h.rows
                || u32::from(cols) != h.cols
                || u16::from(comps) > h.samples_per_pixel.max(1)
            {
                return Err(format!(
                    "its JPEG stream declares {cols}×{rows} pixels with {comps} component(s), \
                     the header {}×{} with {} sample(s) per pixel",
                    h.cols, h.rows, h.samples_per_pixel
                ));
            }
        }
    }
    Ok(())
}

/// (height, width, components) of every frame header (SOF0–SOF15 but DHT, JPG and DAC) of a
/// JPEG stream, walking its marker segments by their lengths, and the entropy-coded data after
/// each scan header byte by byte (a 0xFF there is stuffed or a restart marker, never data).
fn jpeg_frame_headers(b: &[u8]) -> Vec<(u16, u16, u8)> {
    let be16 = |s: &[u8]| u16::from_be_bytes([s[0], s[1]]);
    let mut out = Vec::new();
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] != 0xFF {
            i += 1;
            continue;
        }
        let m = b[i + 1];
        match m {
            // A stuffed 0xFF in entropy data, or fill bytes before a marker.
            0x00 | 0xFF => {
                i += 1;
                continue;
            }
            // Markers without a length: TEM, RST0–7, SOI, EOI.
            0x01 | 0xD0..=0xD9 => {
                i += 2;
                continue;
            }
            _ => {}
        }
        let Some(len) = b.get(i + 2..i + 4).map(be16) else {
            break;
        };
        if matches!(m, 0xC0..=0xCF)
            && !matches!(m, 0xC4 | 0xC8 | 0xCC)
            && let Some(f) = b.get(i + 5..i + 10)
        {
            out.push((be16(&f[0..2]), be16(&f[2..4]), f[4]));
        }
        i += 2 + usize::from(len.max(2));
    }
    out
}

#[cfg(test)]
mod jpeg_tests {
    use super::jpeg_frame_headers;

    #[test]
    fn frame_headers_are_found_by_walking_segments_not_by_scanning_bytes() {
        // SOI, a comment whose text holds FF C0 (not a frame), SOF3 512×21581, SOS, entropy
        // data with a stuffed FF 00 and a restart marker, then a second SOF0 8×8, EOI.
        let mut b = vec![0xFF, 0xD8, 0xFF, 0xFE, 0x00, 0x0A];
        b.extend([0xFF, 0xC0, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55]);
        b.extend([
            0xFF, 0xC3, 0x00, 0x0B, 16, 0x54, 0x4D, 0x02, 0x00, 1, 1, 0x11, 0,
        ]);
        b.extend([0xFF, 0xDA, 0x00, 0x08, 1, 1, 0, 1, 0, 0]);
        b.extend([0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56]);
        b.extend([
            0xFF, 0xC0, 0x00, 0x0B, 8, 0x00, 0x08, 0x00, 0x08, 1, 1, 0x11, 0,
        ]);
        b.extend([0xFF, 0xD9]);
        assert_eq!(jpeg_frame_headers(&b), vec![(21581, 512, 1), (8, 8, 1)]);
        // Truncated anywhere: no panic.
        for n in 0..b.len() {
            let _ = jpeg_frame_headers(&b[..n]);
        }
    }
}
