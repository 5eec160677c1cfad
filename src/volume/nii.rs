//! NIfTI-1/2 (`.nii`, `.nii.gz`) through nifti-rs, and a byte writer for label maps.
//!
//! Reading: the header is parsed first and the voxel budget checked before anything is
//! decompressed or allocated; `scl_slope`/`scl_inter` are applied; sform (else qform, else the
//! voxel sizes) gives the orientation, converted from NIfTI's RAS to DICOM's LPS.
//!
//! Writing: nifti-rs writes only to filesystem paths, which the browser has none of, so label
//! maps are serialised here (a plain NIfTI-1 header, checked by reading it back with nifti-rs in
//! the tests).

use std::io::{Cursor, Read};
use std::path::Path;

use flate2::read::GzDecoder;
use nifti::{InMemNiftiObject, NiftiHeader, NiftiObject, NiftiType};

use super::{Affine, AxisMap, CtVolume, InputKind, IntensityScale, Limits, VolumeMeta, quantise};
use crate::alloc_cap::{reader_budget, with_budget};
use crate::error::{Error, Result};

/// True when the bytes start with a NIfTI-1 or NIfTI-2 header (either byte order).
pub fn looks_like_nifti(bytes: &[u8]) -> bool {
    if bytes.len() >= 348 {
        let le = i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let be = i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        if (le == 348 || be == 348) && (&bytes[344..347] == b"n+1" || &bytes[344..347] == b"ni1") {
            return true;
        }
        if (le == 540 || be == 540) && &bytes[4..7] == b"n+2" {
            return true;
        }
    }
    false
}

fn nifti_err(name: &Path, reason: impl std::fmt::Display) -> Error {
    Error::Nifti {
        path: name.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Read a NIfTI volume from `.nii` or `.nii.gz` bytes.
pub fn from_bytes(name: &Path, bytes: &[u8], limits: &Limits) -> Result<CtVolume> {
    let gz = bytes.starts_with(&[0x1F, 0x8B]);
    let Declared {
        header,
        dims,
        extra,
        datatype,
    } = read_declared(name, bytes, gz)?;
    // Budget on everything the file declares (all volumes of a 4-D file are read).
    let total = dims[0]
        .saturating_mul(dims[1])
        .saturating_mul(dims[2])
        .saturating_mul(extra);
    if total > limits.max_voxels {
        return Err(Error::TooLarge {
            path: name.to_path_buf(),
            voxels: total,
            budget: limits.max_voxels,
        });
    }
    let mut out = limits.reserve(name, dims)?;
    let n = (dims[0] * dims[1] * dims[2]) as usize;
    let header = read_voxels(name, bytes, gz, &header, (total, n), datatype, &mut out)?;

    let mut warnings = Vec::new();
    if extra > 1 {
        warnings.push(format!(
            "4-D NIfTI: only the first of {extra} volumes is used"
        ));
    }
    let (spacing, affine) = spacing_and_affine(&header, &mut warnings);
    let lo = out.iter().copied().min().unwrap_or(0);
    if lo > -500 {
        warnings.push(
            "values never go below −500: this may not be a CT in Hounsfield units (a label \
             map or an MR?)"
                .into(),
        );
    }
    let dims = [dims[0] as usize, dims[1] as usize, dims[2] as usize];
    let descrip = String::from_utf8_lossy(&header.descrip)
        .trim_end_matches('\0')
        .trim()
        .to_string();
    Ok(CtVolume {
        voxels: out,
        dims,
        spacing_mm: spacing,
        spacing_known: true,
        affine,
        axis_map: AxisMap::identity(dims),
        input_affine: affine,
        scale: IntensityScale::Hounsfield,
        kind: InputKind::Nifti,
        meta: VolumeMeta {
            n_files: 1,
            series_description: (!descrip.is_empty()).then_some(descrip),
            warnings,
            ..Default::default()
        },
    }
    .canonicalise())
}

/// What a header declares, checked before anything else is decompressed or allocated.
struct Declared {
    header: NiftiHeader,
    /// x, y, z sizes.
    dims: [u64; 3],
    /// Product of the sizes past z (volumes of a 4-D file).
    extra: u64,
    datatype: NiftiType,
}

/// The header alone (decompressing only its bytes, so that a forged size is refused before the
/// rest is inflated), checked: NIfTI magic, not a .hdr/.img pair, 1–7 dimensions, a CT
/// intensity type.
fn read_declared(name: &Path, bytes: &[u8], gz: bool) -> Result<Declared> {
    let mut head = Vec::with_capacity(544);
    if gz {
        GzDecoder::new(bytes)
            .take(544)
            .read_to_end(&mut head)
            .map_err(|e| nifti_err(name, format!("not a valid gzip stream ({e})")))?;
    } else {
        head.extend_from_slice(&bytes[..bytes.len().min(544)]);
    }
    if !looks_like_nifti(&head) {
        return Err(nifti_err(
            name,
            "no NIfTI header (the first bytes are not a NIfTI-1/2 header)",
        ));
    }
    let header = NiftiHeader::from_reader(Cursor::new(&head)).map_err(|e| nifti_err(name, e))?;
    if &header.magic == b"ni1\0" {
        return Err(nifti_err(
            name,
            "this is the header of a .hdr/.img pair; convert it to a single .nii file",
        ));
    }
    let ndim = header.dim[0] as usize;
    if !(1..=7).contains(&ndim) {
        return Err(nifti_err(name, format!("invalid dimension count {ndim}")));
    }
    let d = |i: usize| -> u64 {
        if i <= ndim {
            header.dim[i].max(1) as u64
        } else {
            1
        }
    };
    let dims = [d(1), d(2), d(3)];
    let extra: u64 = (4..=7).map(d).product();
    let datatype = header
        .data_type()
        .map_err(|e| nifti_err(name, format!("unsupported data type ({e})")))?;
    if matches!(datatype, NiftiType::Rgb24 | NiftiType::Rgba32) {
        return Err(Error::NotCt {
            path: name.to_path_buf(),
            what: "a colour (RGB) NIfTI image".into(),
        });
    }
    if matches!(
        datatype,
        NiftiType::Complex64 | NiftiType::Complex128 | NiftiType::Complex256 | NiftiType::Float128
    ) {
        return Err(nifti_err(
            name,
            format!("data type {datatype:?} is not a CT intensity type"),
        ));
    }
    Ok(Declared {
        header,
        dims,
        extra,
        datatype,
    })
}

/// The first `n` voxels (of `total` declared) into `out` (reserved for them), rescaled by
/// `scl_slope`/`scl_inter`, non-finite values as 0. Returns the header nifti-rs read.
fn read_voxels(
    name: &Path,
    bytes: &[u8],
    gz: bool,
    header: &NiftiHeader,
    (total, n): (u64, usize),
    datatype: NiftiType,
    out: &mut Vec<i16>,
) -> Result<NiftiHeader> {
    // A forged offset would otherwise size the buffer below (found by fuzzing).
    if !(header.vox_offset.is_finite() && (0.0..=(1u64 << 30) as f32).contains(&header.vox_offset))
    {
        return Err(nifti_err(
            name,
            format!("invalid voxel data offset {}", header.vox_offset),
        ));
    }
    let needed = (header.vox_offset.max(352.0) as u64)
        .saturating_add(total.saturating_mul(datatype.size_of() as u64));
    // The inflated stream and nifti-rs's copy are never larger than what the header declares.
    let (obj, _) = with_budget(reader_budget(bytes.len(), needed as usize), || {
        if gz {
            let mut inflated = Vec::new();
            // Deflate expands at most about 1032:1, so a short stream cannot need more than that.
            let cap = needed.min((bytes.len() as u64).saturating_mul(1032));
            inflated
                .try_reserve_exact(cap as usize)
                .map_err(|_| Error::OutOfMemory {
                    path: name.to_path_buf(),
                    bytes: needed,
                })?;
            GzDecoder::new(bytes)
                .take(needed)
                .read_to_end(&mut inflated)
                .map_err(|e| nifti_err(name, format!("the gzip stream is damaged ({e})")))?;
            read_object(name, &inflated, needed)
        } else {
            read_object(name, bytes, needed)
        }
    });
    let obj = obj?;
    let header = obj.header().clone();
    let (slope, inter) = (header.scl_slope, header.scl_inter);
    let rescale = slope.is_finite() && slope != 0.0 && (slope != 1.0 || inter != 0.0);
    let raw = obj.volume().raw_data();
    let le = header.endianness == nifti::Endianness::Little;
    let value = |v: f32| quantise(if rescale { v * slope + inter } else { v });
    decode_voxels(raw, datatype, le, n, &mut |v| out.push(value(v)))
        .map_err(|e| nifti_err(name, e))?;
    Ok(header)
}

/// Voxel spacing (mm, from pixdim and the unit code) and the LPS affine (sform, else qform,
/// else the voxel sizes; NIfTI's RAS negated in x and y).
fn spacing_and_affine(header: &NiftiHeader, warnings: &mut Vec<String>) -> ([f64; 3], Affine) {
    let unit = match header.xyzt_units & 0x07 {
        1 => 1000.0,
        3 => 0.001,
        _ => 1.0,
    };
    let mut spacing = [0.0f64; 3];
    for (a, s) in spacing.iter_mut().enumerate() {
        let v = header.pixdim[a + 1].abs() as f64 * unit;
        *s = if v.is_finite() && v > 0.0 {
            v
        } else {
            warnings.push(format!("pixdim[{}] is invalid; 1 mm assumed", a + 1));
            1.0
        };
    }
    let mut affine = ras_affine(header, spacing, unit, warnings);
    // RAS → LPS: negate the first two rows.
    for v in affine.iter_mut().take(2).flatten() {
        *v = -*v;
    }
    (spacing, affine)
}

/// Hand the first `n` voxels of `raw` (of `datatype`) to `out` as f32, in order.
fn decode_voxels(
    raw: &[u8],
    datatype: NiftiType,
    little_endian: bool,
    n: usize,
    out: &mut dyn FnMut(f32),
) -> std::result::Result<(), String> {
    let size = datatype.size_of();
    if raw.len() < n * size {
        return Err(format!(
            "{} bytes of voxel data, {} needed",
            raw.len(),
            n * size
        ));
    }
    macro_rules! conv {
        ($t:ty) => {{
            for c in raw[..n * size].chunks_exact(size) {
                let mut b = [0u8; std::mem::size_of::<$t>()];
                b.copy_from_slice(c);
                let v = if little_endian {
                    <$t>::from_le_bytes(b)
                } else {
                    <$t>::from_be_bytes(b)
                };
                out(v as f32);
            }
        }};
    }
    match datatype {
        NiftiType::Uint8 => conv!(u8),
        NiftiType::Int8 => conv!(i8),
        NiftiType::Int16 => conv!(i16),
        NiftiType::Uint16 => conv!(u16),
        NiftiType::Int32 => conv!(i32),
        NiftiType::Uint32 => conv!(u32),
        NiftiType::Int64 => conv!(i64),
        NiftiType::Uint64 => conv!(u64),
        NiftiType::Float32 => conv!(f32),
        NiftiType::Float64 => conv!(f64),
        other => return Err(format!("data type {other:?} is not supported")),
    }
    Ok(())
}

fn read_object(name: &Path, bytes: &[u8], needed: u64) -> Result<InMemNiftiObject> {
    if (bytes.len() as u64) < needed {
        return Err(nifti_err(
            name,
            format!(
                "the file is truncated: {} bytes, the header needs {needed}",
                bytes.len()
            ),
        ));
    }
    check_extensions(bytes).map_err(|e| nifti_err(name, e))?;
    InMemNiftiObject::from_reader(Cursor::new(bytes)).map_err(|e| nifti_err(name, e))
}

/// Walk the header extensions as nifti-rs will (from byte 352 up to `vox_offset`), refusing any
/// whose declared size does not fit in the bytes given: nifti-rs reserves each extension's
/// declared size before reading it (a fuzzed file asked for 1.8 GB that way).
fn check_extensions(bytes: &[u8]) -> std::result::Result<(), String> {
    if bytes.len() < 352 || bytes[348] == 0 {
        return Ok(());
    }
    let le = i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) == 348;
    let word = |p: usize| {
        let b = [bytes[p], bytes[p + 1], bytes[p + 2], bytes[p + 3]];
        if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    // vox_offset sits at byte 108 of a NIfTI-1 header; the caller checked it is sane.
    let len = (f32::from_bits(word(108)).max(0.0) as usize).saturating_sub(352);
    let (mut offset, mut pos) = (0usize, 352usize);
    while offset < len {
        if pos + 8 > bytes.len() {
            return Err("a header extension is truncated".into());
        }
        let esize = word(pos) as i32;
        if esize < 8 {
            return Err(format!(
                "a header extension declares an invalid size {esize}"
            ));
        }
        let end = pos + esize as usize;
        if end > bytes.len() {
            return Err(format!(
                "a header extension declares {esize} bytes but only {} remain",
                bytes.len() - pos
            ));
        }
        pos = end;
        offset += esize as usize;
    }
    Ok(())
}

/// The voxel → RAS (mm) affine: sform, else qform, else the voxel sizes alone.
fn ras_affine(h: &NiftiHeader, spacing: [f64; 3], unit: f64, warnings: &mut Vec<String>) -> Affine {
    if h.sform_code > 0 {
        let r = |row: [f32; 4]| -> [f64; 4] {
            [
                row[0] as f64 * unit,
                row[1] as f64 * unit,
                row[2] as f64 * unit,
                row[3] as f64 * unit,
            ]
        };
        let a = [r(h.srow_x), r(h.srow_y), r(h.srow_z)];
        if a.iter().flatten().all(|v| v.is_finite()) {
            return a;
        }
    }
    if h.qform_code > 0 {
        let (b, c, d) = (h.quatern_b as f64, h.quatern_c as f64, h.quatern_d as f64);
        let a = (1.0 - (b * b + c * c + d * d)).max(0.0).sqrt();
        let qfac = if h.pixdim[0] < 0.0 { -1.0 } else { 1.0 };
        let r = [
            [
                a * a + b * b - c * c - d * d,
                2.0 * (b * c - a * d),
                2.0 * (b * d + a * c),
            ],
            [
                2.0 * (b * c + a * d),
                a * a + c * c - b * b - d * d,
                2.0 * (c * d - a * b),
            ],
            [
                2.0 * (b * d - a * c),
                2.0 * (c * d + a * b),
                a * a + d * d - b * b - c * c,
            ],
        ];
        let off = [
            h.quatern_x as f64 * unit,
            h.quatern_y as f64 * unit,
            h.quatern_z as f64 * unit,
        ];
        let mut m = [[0.0; 4]; 3];
        for row in 0..3 {
            m[row][0] = r[row][0] * spacing[0];
            m[row][1] = r[row][1] * spacing[1];
            m[row][2] = r[row][2] * spacing[2] * qfac;
            m[row][3] = off[row];
        }
        if m.iter().flatten().all(|v| v.is_finite()) {
            return m;
        }
    }
    warnings.push("no sform or qform: orientation unknown, axes assumed to be RAS".into());
    [
        [spacing[0], 0.0, 0.0, 0.0],
        [0.0, spacing[1], 0.0, 0.0],
        [0.0, 0.0, spacing[2], 0.0],
    ]
}

/// Serialise a uint8 label map (canonical order, same dims as `vol`) as `.nii.gz` bytes on the
/// input's own grid and orientation: same voxel order and affine as the file that was read.
pub fn write_labels_nii_gz(vol: &CtVolume, labels: &[u8], description: &str) -> Result<Vec<u8>> {
    if labels.len() != vol.voxels.len() {
        return Err(Error::InvalidArgument(format!(
            "label map has {} voxels, the volume {}",
            labels.len(),
            vol.voxels.len()
        )));
    }
    let data = vol.axis_map.to_input(labels);
    // NIFTI_INTENT_LABEL = 1002.
    encode(vol, &data, NiftiType::Uint8, 1002, description, true)
}

/// Serialise the volume's voxels as int16 HU (the benchmark's synthetic NIfTI input).
pub fn write_hu_nii(vol: &CtVolume, gzip: bool) -> Result<Vec<u8>> {
    let hu = vol.axis_map.to_input(&vol.voxels);
    let mut bytes = Vec::with_capacity(hu.len() * 2);
    for v in hu {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    encode(
        vol,
        &bytes,
        NiftiType::Int16,
        0,
        "ctscreen synthetic HU",
        gzip,
    )
}

fn encode(
    vol: &CtVolume,
    data: &[u8],
    datatype: NiftiType,
    intent: i16,
    description: &str,
    gzip: bool,
) -> Result<Vec<u8>> {
    let mut h = header(
        vol.axis_map.input_dims,
        &vol.input_affine,
        datatype,
        intent,
        description,
        data.len(),
    )?;
    h.extend_from_slice(data);
    if !gzip {
        return Ok(h);
    }
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut enc, &h)
        .and_then(|_| enc.finish())
        .map_err(|e| Error::InvalidArgument(format!("cannot compress the NIfTI file: {e}")))
}

/// A NIfTI-1 header (348 bytes and an empty extension flag) for `dims` voxels whose index maps
/// to LPS mm by `affine_lps`, with room reserved for `data_len` bytes of data after it.
fn header(
    dims: [usize; 3],
    affine_lps: &Affine,
    datatype: NiftiType,
    intent: i16,
    description: &str,
    data_len: usize,
) -> Result<Vec<u8>> {
    if dims.iter().any(|&d| d > i16::MAX as usize) {
        return Err(Error::InvalidArgument(format!(
            "dims {dims:?} exceed what NIfTI-1 can store"
        )));
    }
    // LPS → RAS for the file.
    let mut ras = *affine_lps;
    for v in ras.iter_mut().take(2).flatten() {
        *v = -*v;
    }
    let spacing: Vec<f64> = (0..3)
        .map(|c| (ras[0][c].powi(2) + ras[1][c].powi(2) + ras[2][c].powi(2)).sqrt())
        .collect();

    let mut h = Vec::with_capacity(352 + data_len);
    let i16le = |h: &mut Vec<u8>, v: i16| h.extend_from_slice(&v.to_le_bytes());
    let f32le = |h: &mut Vec<u8>, v: f32| h.extend_from_slice(&v.to_le_bytes());
    h.extend_from_slice(&348i32.to_le_bytes()); // sizeof_hdr
    h.extend_from_slice(&[0u8; 10]); // data_type
    h.extend_from_slice(&[0u8; 18]); // db_name
    h.extend_from_slice(&0i32.to_le_bytes()); // extents
    i16le(&mut h, 0); // session_error
    h.push(b'r'); // regular
    h.push(0); // dim_info
    for v in [3, dims[0], dims[1], dims[2], 1, 1, 1, 1] {
        i16le(&mut h, v as i16);
    }
    for _ in 0..3 {
        f32le(&mut h, 0.0); // intent_p1..3
    }
    i16le(&mut h, intent);
    i16le(&mut h, datatype as i16);
    i16le(&mut h, (datatype.size_of() * 8) as i16); // bitpix
    i16le(&mut h, 0); // slice_start
    f32le(&mut h, 1.0); // pixdim[0] = qfac
    for s in &spacing {
        f32le(&mut h, *s as f32);
    }
    for _ in 4..8 {
        f32le(&mut h, 1.0);
    }
    f32le(&mut h, 352.0); // vox_offset
    f32le(&mut h, 1.0); // scl_slope
    f32le(&mut h, 0.0); // scl_inter
    i16le(&mut h, 0); // slice_end
    h.push(0); // slice_code
    h.push(2); // xyzt_units: mm
    for _ in 0..4 {
        f32le(&mut h, 0.0); // cal_max, cal_min, slice_duration, toffset
    }
    h.extend_from_slice(&0i32.to_le_bytes()); // glmax
    h.extend_from_slice(&0i32.to_le_bytes()); // glmin
    let mut descrip = [0u8; 80];
    for (d, s) in descrip.iter_mut().zip(description.bytes().take(79)) {
        *d = s;
    }
    h.extend_from_slice(&descrip);
    h.extend_from_slice(&[0u8; 24]); // aux_file
    i16le(&mut h, 0); // qform_code: unused, the sform carries the geometry
    i16le(&mut h, 1); // sform_code: scanner anatomical
    for _ in 0..6 {
        f32le(&mut h, 0.0); // quatern_b..d, qoffset_x..z
    }
    for row in &ras {
        for v in row {
            f32le(&mut h, *v as f32);
        }
    }
    h.extend_from_slice(&[0u8; 16]); // intent_name
    h.extend_from_slice(b"n+1\0");
    debug_assert_eq!(h.len(), 348);
    h.extend_from_slice(&[0u8; 4]); // no extensions
    Ok(h)
}

/// In-plane step for a viewer copy of `dims` within `max_voxels`: the smallest `s` such that
/// ⌈nx/s⌉·⌈ny/s⌉·nz fits (1 when the volume fits whole). The slices are never thinned: the
/// coronal and sagittal panes need every one.
pub fn view_step(dims: [usize; 3], max_voxels: usize) -> usize {
    let mut s = 1;
    while s < dims[0].max(dims[1])
        && dims[0].div_ceil(s) * dims[1].div_ceil(s) * dims[2] > max_voxels
    {
        s += 1;
    }
    s
}

/// A viewer copy of canonical voxels on `vol`'s grid, every `step`² in-plane block made one
/// voxel by `reduce`, as an uncompressed NIfTI-1 in canonical order with the matching affine
/// (the block centres). Written straight into the file's buffer: the largest volumes the page
/// takes must not be copied twice.
fn write_view<T: Copy, const N: usize>(
    vol: &CtVolume,
    values: &[T],
    step: usize,
    datatype: NiftiType,
    intent: i16,
    description: &str,
    reduce: impl Fn(&mut dyn Iterator<Item = T>) -> [u8; N],
) -> Result<Vec<u8>> {
    let [nx, ny, nz] = vol.dims;
    if values.len() != nx * ny * nz {
        return Err(Error::InvalidArgument(format!(
            "viewer volume has {} voxels, the scan {}",
            values.len(),
            nx * ny * nz
        )));
    }
    let s = step.max(1);
    let (vx, vy) = (nx.div_ceil(s), ny.div_ceil(s));
    let mut affine = vol.affine;
    let half = (s as f64 - 1.0) / 2.0;
    for row in affine.iter_mut() {
        row[3] += (row[0] + row[1]) * half;
        row[0] *= s as f64;
        row[1] *= s as f64;
    }
    let mut out = header(
        [vx, vy, nz],
        &affine,
        datatype,
        intent,
        description,
        vx * vy * nz * datatype.size_of(),
    )?;
    for z in 0..nz {
        let plane = &values[z * nx * ny..(z + 1) * nx * ny];
        for by in 0..vy {
            for bx in 0..vx {
                let mut block = (by * s..((by + 1) * s).min(ny))
                    .flat_map(|y| (bx * s..((bx + 1) * s).min(nx)).map(move |x| plane[x + nx * y]));
                out.extend_from_slice(&reduce(&mut block));
            }
        }
    }
    Ok(out)
}

/// The scan's HU for a viewer (int16, in-plane block means over `step`²), see [`write_view`].
pub fn write_view_hu(vol: &CtVolume, step: usize) -> Result<Vec<u8>> {
    write_view(
        vol,
        &vol.voxels,
        step,
        NiftiType::Int16,
        0,
        "ctscreen HU (viewer copy)",
        |b| {
            let (sum, n) = b.fold((0i64, 0i64), |(s, n), v| (s + v as i64, n + 1));
            ((sum / n.max(1)) as i16).to_le_bytes()
        },
    )
}

/// A label map for a viewer (uint8, the block's largest label, so a lesion smaller than a
/// block still shows), see [`write_view`]. `intent_label` marks it NIFTI_INTENT_LABEL, which
/// viewers such as NiiVue draw as outlines (the lung); without it the labels are drawn filled
/// (the lesions).
pub fn write_view_labels(
    vol: &CtVolume,
    labels: &[u8],
    step: usize,
    description: &str,
    intent_label: bool,
) -> Result<Vec<u8>> {
    write_view(
        vol,
        labels,
        step,
        NiftiType::Uint8,
        if intent_label { 1002 } else { 0 },
        description,
        |b| [b.max().unwrap_or(0)],
    )
}

/// Read just the header and the uint8 labels of a `.nii.gz` (for tests and round trips).
pub fn read_labels(name: &Path, bytes: &[u8]) -> Result<(NiftiHeader, Vec<u8>)> {
    let mut inflated = Vec::new();
    GzDecoder::new(bytes)
        .read_to_end(&mut inflated)
        .map_err(|e| nifti_err(name, e))?;
    let obj =
        InMemNiftiObject::from_reader(Cursor::new(&inflated)).map_err(|e| nifti_err(name, e))?;
    let h = obj.header().clone();
    let v: Vec<u8> = obj.volume().raw_data().to_vec();
    Ok((h, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phantom() -> CtVolume {
        let dims = [4, 3, 2];
        let affine = [
            [0.7, 0.0, 0.0, -100.0],
            [0.0, 0.7, 0.0, -120.0],
            [0.0, 0.0, 2.5, 30.0],
        ];
        CtVolume::new(
            (0..24).map(|v| v * 10 - 1000).collect(),
            dims,
            [0.7, 0.7, 2.5],
            affine,
            IntensityScale::Hounsfield,
            InputKind::Dicom,
        )
    }

    #[test]
    fn viewer_copy_is_canonical_block_means_at_block_centres() {
        let vol = phantom(); // 4×3×2, 0.7 mm in-plane
        assert_eq!(view_step(vol.dims, 24), 1);
        assert_eq!(view_step(vol.dims, 8), 2); // 2×2×2
        let bytes = write_view_hu(&vol, 2).unwrap();
        let v = from_bytes(Path::new("v.nii"), &bytes, &Limits::default()).unwrap();
        assert_eq!(v.dims, [2, 2, 2]);
        // Block (0,0) of slice 0 holds x 0..2, y 0..2: voxels 0,1,4,5 → HU −1000,−990,−960,−950.
        assert_eq!(v.voxels[0], -975);
        // The edge block (x 2..4, y 2..3) of slice 1: voxels 22, 23 → −780, −770.
        assert_eq!(v.voxels[7], -775);
        // Voxels 1.4 mm apart, the first centred between the first two of the scan's.
        assert!((v.spacing_mm[0] - 1.4).abs() < 1e-5 && (v.spacing_mm[2] - 2.5).abs() < 1e-5);
        assert!((v.affine[0][3] - (-100.0 + 0.35)).abs() < 1e-4);
        assert!((v.affine[1][3] - (-120.0 + 0.35)).abs() < 1e-4);
        // Labels keep the block's largest value: a one-voxel lesion survives.
        let mut labels = vec![0u8; 24];
        labels[5] = 2;
        let l = write_view_labels(&vol, &labels, 2, "t", true).unwrap();
        assert_eq!(&l[352..], &[2, 0, 0, 0, 0, 0, 0, 0]);
        assert!(write_view_labels(&vol, &labels[..3], 2, "t", false).is_err());
    }

    #[test]
    fn written_labels_read_back_with_geometry() {
        let vol = phantom();
        let labels: Vec<u8> = (0..24).map(|i| (i % 3) as u8).collect();
        let bytes = write_labels_nii_gz(&vol, &labels, "ctscreen test").unwrap();
        let (h, back) = read_labels(Path::new("m.nii.gz"), &bytes).unwrap();
        assert_eq!(&h.dim[..4], &[3, 4, 3, 2]);
        assert_eq!(back, labels);
        // LPS x 0.7 → RAS −0.7; the origin flips sign on x and y.
        assert!((h.srow_x[0] + 0.7).abs() < 1e-6 && (h.srow_x[3] - 100.0).abs() < 1e-4);
        assert!((h.srow_z[2] - 2.5).abs() < 1e-6);
        // And our own reader puts it back on the same canonical grid.
        let v = from_bytes(Path::new("m.nii.gz"), &bytes, &Limits::default()).unwrap();
        assert_eq!(v.dims, vol.dims);
        for r in 0..3 {
            for c in 0..4 {
                assert!((v.affine[r][c] - vol.affine[r][c]).abs() < 1e-4);
            }
        }
        assert_eq!(
            v.voxels.iter().map(|&x| x as u8).collect::<Vec<_>>(),
            labels
        );
    }

    #[test]
    fn forged_dimensions_are_refused_before_allocation() {
        let vol = phantom();
        let mut bytes = Vec::new();
        GzDecoder::new(&write_labels_nii_gz(&vol, &[0; 24], "").unwrap()[..])
            .read_to_end(&mut bytes)
            .unwrap();
        // dim[1..3] = 32767 each: 3.5e13 voxels.
        for i in 0..3 {
            bytes[42 + 2 * i..44 + 2 * i].copy_from_slice(&32767i16.to_le_bytes());
        }
        let e = from_bytes(Path::new("big.nii"), &bytes, &Limits::default()).unwrap_err();
        assert_eq!(e.kind(), "too_large", "{e}");
        // A truncated file is an error too.
        let e = from_bytes(Path::new("t.nii"), &bytes[..300], &Limits::default()).unwrap_err();
        assert_eq!(e.kind(), "nifti", "{e}");
    }
}
