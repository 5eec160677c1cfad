//! One canonical CT volume for every input format (DICOM series, NIfTI-1/2, PNG/JPEG).
//!
//! Every reader ends in [`CtVolume`]: int16 voxels (HU, or 0–255 grey), dims and spacing read from the data, an affine
//! from voxel indices to patient coordinates (DICOM LPS, millimetres), an [`IntensityScale`] and
//! the few metadata a viewer shows. Each format has a `from_bytes` form (the browser hands us
//! bytes) next to the path helpers (the CLI), so both run the same code.
//!
//! Three-dimensional volumes are put in one display convention, whatever the file stored: voxel
//! axes point to patient left (x), posterior (y) and superior (z). Shown with x to the right and
//! y downwards, an axial slice is then in the radiological convention (patient's right on the
//! viewer's left, anterior at the top), the same for DICOM and NIfTI input. The permutation used
//! is kept ([`AxisMap`]) so masks can be written back on the input's own grid.

pub mod dicom;
pub mod grey;
pub mod nii;
pub mod raster;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};

/// A voxel value as stored: rounded to the nearest integer and clamped to int16, non-finite
/// values as 0. HU are integers in CT files (integer stored values, integer rescale in
/// practice); a fractional rescale or a float NIfTI loses under half a HU, far below any
/// threshold here and the 5.9 HU step of the 8-bit lung window the model sees.
pub fn quantise(v: f32) -> i16 {
    if v.is_finite() {
        v.round().clamp(i16::MIN as f32, i16::MAX as f32) as i16
    } else {
        0
    }
}

/// Default voxel budget: about 1024×1024×2000. Larger volumes are refused before allocation.
pub const DEFAULT_MAX_VOXELS: u64 = 1024 * 1024 * 2000;

/// What the voxel values mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IntensityScale {
    /// Hounsfield units (DICOM and NIfTI CT).
    Hounsfield,
    /// 0–255 display values of an already windowed 8-bit image (PNG/JPEG).
    Display8Bit,
}

/// Which reader produced the volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    Dicom,
    Nifti,
    Image,
    /// The generated demo phantom.
    Synthetic,
}

/// A DICOM series that was found among the inputs but not loaded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesSummary {
    pub series_uid: String,
    pub n_files: usize,
    pub modality: Option<String>,
    pub description: Option<String>,
}

/// A file of the input that was not used, and why (damaged, not an image, not part of the
/// series): listed in the report, never silently dropped.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SkippedFile {
    pub file: String,
    /// The error's kind (`dicom`, `unknown_format`, …).
    pub kind: &'static str,
    pub reason: String,
}

impl SkippedFile {
    pub fn from_error(name: &Path, e: &Error) -> Self {
        let file = name.display().to_string();
        let text = e.to_string();
        // The error names the file first; the reason is what follows.
        let reason = text
            .strip_prefix(&format!("{file}: "))
            .or_else(|| text.split_once(": ").map(|(_, r)| r))
            .unwrap_or(&text)
            .to_string();
        Self {
            file,
            kind: e.kind(),
            reason,
        }
    }
}

/// The metadata a viewer shows, plus where the volume came from.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct VolumeMeta {
    pub modality: Option<String>,
    pub series_description: Option<String>,
    pub study_date: Option<String>,
    /// (0018,1210) Convolution Kernel: how the scanner reconstructed the images (sharp kernels
    /// show more noise, which reads as texture); compared between follow-up scans.
    pub convolution_kernel: Option<String>,
    pub series_uid: Option<String>,
    pub transfer_syntax: Option<String>,
    pub n_files: usize,
    pub other_series: Vec<SeriesSummary>,
    /// Things the reader had to assume or work around, for the user to see.
    pub warnings: Vec<String>,
    /// DICOM SOP Instance UIDs of the loaded slices, in `z` order (for DICOM-SEG references).
    #[serde(skip)]
    pub sop_instance_uids: Vec<String>,
    #[serde(skip)]
    pub study_uid: Option<String>,
    #[serde(skip)]
    pub frame_of_reference_uid: Option<String>,
    /// SOP Class UID of the loaded slices.
    #[serde(skip)]
    pub sop_class_uid: Option<String>,
    /// Patient and study attributes copied into derived objects (DICOM-SEG): (group, element,
    /// VR, value).
    #[serde(skip)]
    pub patient_study: Vec<(u16, u16, String, String)>,
    /// Files given with the input that were not used (damaged, not images), with the reason.
    pub skipped_files: Vec<SkippedFile>,
}

/// How the canonical voxel axes relate to the input's: canonical axis `a` is input axis
/// `perm[a]`, reversed when `flip[a]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AxisMap {
    pub perm: [usize; 3],
    pub flip: [bool; 3],
    /// The input's dims, in the input's axis order.
    pub input_dims: [usize; 3],
}

impl AxisMap {
    pub fn identity(dims: [usize; 3]) -> Self {
        AxisMap {
            perm: [0, 1, 2],
            flip: [false; 3],
            input_dims: dims,
        }
    }

    pub fn is_identity(&self) -> bool {
        self.perm == [0, 1, 2] && self.flip == [false; 3]
    }

    /// Dims in canonical order.
    pub fn output_dims(&self) -> [usize; 3] {
        [
            self.input_dims[self.perm[0]],
            self.input_dims[self.perm[1]],
            self.input_dims[self.perm[2]],
        ]
    }

    /// Linear index in the input array of canonical voxel (x, y, z).
    fn input_index(&self, c: [usize; 3]) -> usize {
        let mut ii = [0usize; 3];
        let od = self.output_dims();
        for a in 0..3 {
            let v = if self.flip[a] { od[a] - 1 - c[a] } else { c[a] };
            ii[self.perm[a]] = v;
        }
        let d = self.input_dims;
        ii[0] + d[0] * (ii[1] + d[1] * ii[2])
    }

    /// Gather input-ordered data into canonical order (one new copy; the input is dropped).
    pub fn to_canonical<T: Copy>(&self, input: Vec<T>) -> Vec<T> {
        if self.is_identity() {
            return input;
        }
        let od = self.output_dims();
        let mut out = Vec::with_capacity(input.len());
        for z in 0..od[2] {
            for y in 0..od[1] {
                for x in 0..od[0] {
                    out.push(input[self.input_index([x, y, z])]);
                }
            }
        }
        out
    }

    /// Scatter canonical-ordered data back into the input's order (for exports).
    pub fn to_input<T: Copy + Default>(&self, canonical: &[T]) -> Vec<T> {
        if self.is_identity() {
            return canonical.to_vec();
        }
        let od = self.output_dims();
        let mut out = vec![T::default(); canonical.len()];
        let mut i = 0;
        for z in 0..od[2] {
            for y in 0..od[1] {
                for x in 0..od[0] {
                    out[self.input_index([x, y, z])] = canonical[i];
                    i += 1;
                }
            }
        }
        out
    }
}

/// A 3×4 affine: patient position (LPS, mm) = `m · [i, j, k, 1]`.
pub type Affine = [[f64; 4]; 3];

/// The canonical volume.
#[derive(Debug, Clone)]
pub struct CtVolume {
    /// Voxels, x fastest, then y, then z: index `x + dims[0] * (y + dims[1] * z)`. HU (or 8-bit
    /// grey) as int16, see [`quantise`]: half the memory of f32, which is what lets a
    /// 512²×1500 series fit in a browser tab.
    pub voxels: Vec<i16>,
    /// [x, y, z] sizes.
    pub dims: [usize; 3],
    /// Voxel size in mm along x, y, z (from the data; see `spacing_known`).
    pub spacing_mm: [f64; 3],
    /// False for PNG/JPEG, whose pixels have no physical size: report areas, never mL.
    pub spacing_known: bool,
    /// Voxel index → patient LPS mm, for the canonical axes.
    pub affine: Affine,
    /// How the canonical axes map back to the file's.
    pub axis_map: AxisMap,
    /// The input's own affine (voxel index of the file → LPS mm), for writing results back.
    pub input_affine: Affine,
    pub scale: IntensityScale,
    pub kind: InputKind,
    pub meta: VolumeMeta,
}

/// What `ctscreen info` prints.
#[derive(Debug, Clone, Serialize)]
pub struct VolumeInfo {
    pub kind: InputKind,
    pub dims: [usize; 3],
    pub spacing_mm: [f64; 3],
    pub spacing_known: bool,
    pub hu: bool,
    pub transfer_syntax: Option<String>,
    pub series_uid: Option<String>,
    pub n_files: usize,
    pub modality: Option<String>,
    pub series_description: Option<String>,
    pub study_date: Option<String>,
    pub other_series: Vec<SeriesSummary>,
    pub value_range: [f32; 2],
    pub warnings: Vec<String>,
    pub skipped_files: Vec<SkippedFile>,
}

/// Limits a reader must respect.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_voxels: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_voxels: DEFAULT_MAX_VOXELS,
        }
    }
}

impl Limits {
    /// Refuse a volume over budget, then reserve its int16 storage without aborting on failure.
    pub(crate) fn reserve(&self, name: &Path, dims: [u64; 3]) -> Result<Vec<i16>> {
        let n = dims[0]
            .checked_mul(dims[1])
            .and_then(|v| v.checked_mul(dims[2]))
            .unwrap_or(u64::MAX);
        if n == 0 {
            return Err(Error::NoSlices(format!(
                "{} declares an empty volume ({}×{}×{})",
                name.display(),
                dims[0],
                dims[1],
                dims[2]
            )));
        }
        if n > self.max_voxels {
            return Err(Error::TooLarge {
                path: name.to_path_buf(),
                voxels: n,
                budget: self.max_voxels,
            });
        }
        let n = usize::try_from(n).map_err(|_| Error::TooLarge {
            path: name.to_path_buf(),
            voxels: n,
            budget: self.max_voxels,
        })?;
        let mut v = Vec::new();
        v.try_reserve_exact(n).map_err(|_| Error::OutOfMemory {
            path: name.to_path_buf(),
            bytes: n as u64 * 2,
        })?;
        Ok(v)
    }
}

impl CtVolume {
    /// A volume in the file's own axis order (not yet canonicalised), with physical spacing and
    /// no metadata: the readers, the phantom and the tests start here.
    pub fn new(
        voxels: Vec<i16>,
        dims: [usize; 3],
        spacing_mm: [f64; 3],
        affine: Affine,
        scale: IntensityScale,
        kind: InputKind,
    ) -> Self {
        CtVolume {
            voxels,
            dims,
            spacing_mm,
            spacing_known: true,
            affine,
            axis_map: AxisMap::identity(dims),
            input_affine: affine,
            scale,
            kind,
            meta: VolumeMeta::default(),
        }
    }

    /// Voxel size along each axis (norms of the affine's columns) and the in-plane direction
    /// cosines as DICOM's ImageOrientationPatient (row direction, then column direction).
    pub fn orientation(&self) -> ([f64; 3], [f64; 6]) {
        let a = &self.affine;
        let norm = |c: usize| (a[0][c].powi(2) + a[1][c].powi(2) + a[2][c].powi(2)).sqrt();
        let s = [norm(0), norm(1), norm(2)];
        let iop = [
            a[0][0] / s[0],
            a[1][0] / s[0],
            a[2][0] / s[0],
            a[0][1] / s[1],
            a[1][1] / s[1],
            a[2][1] / s[1],
        ];
        (s, iop)
    }

    /// Number of voxels in one axial slice.
    pub fn slice_len(&self) -> usize {
        self.dims[0] * self.dims[1]
    }

    /// The voxels of slice `z`. Panics only on an out-of-range `z` (a caller bug, not input).
    pub fn slice(&self, z: usize) -> &[i16] {
        let n = self.slice_len();
        &self.voxels[z * n..(z + 1) * n]
    }

    /// Volume of one voxel in mL, when the spacing is physical.
    pub fn voxel_ml(&self) -> Option<f64> {
        self.spacing_known
            .then(|| self.spacing_mm.iter().product::<f64>() / 1000.0)
    }

    /// Patient z (mm, LPS: larger is superior) of slice `z`'s centre.
    pub fn slice_position_mm(&self, z: usize) -> f64 {
        let a = &self.affine;
        a[2][2] * z as f64 + a[2][3]
    }

    pub fn info(&self) -> VolumeInfo {
        let (lo, hi) = self
            .voxels
            .iter()
            .fold((i16::MAX, i16::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let (lo, hi) = if self.voxels.is_empty() {
            (f32::INFINITY, f32::NEG_INFINITY)
        } else {
            (lo as f32, hi as f32)
        };
        VolumeInfo {
            kind: self.kind,
            dims: self.dims,
            spacing_mm: self.spacing_mm,
            spacing_known: self.spacing_known,
            hu: self.scale == IntensityScale::Hounsfield,
            transfer_syntax: self.meta.transfer_syntax.clone(),
            series_uid: self.meta.series_uid.clone(),
            n_files: self.meta.n_files,
            modality: self.meta.modality.clone(),
            series_description: self.meta.series_description.clone(),
            study_date: self.meta.study_date.clone(),
            other_series: self.meta.other_series.clone(),
            value_range: [lo, hi],
            warnings: self.meta.warnings.clone(),
            skipped_files: self.meta.skipped_files.clone(),
        }
    }

    /// Put a volume read in file order into the display convention (see the module docs).
    /// Single slices keep their plane: a lone coronal slice stays a coronal image.
    pub(crate) fn canonicalise(mut self) -> Self {
        self.input_affine = self.affine;
        self.axis_map = AxisMap::identity(self.dims);
        if self.dims.iter().any(|&d| d < 2) {
            return self;
        }
        let map = axis_map_for(&self.affine, self.dims);
        if map.is_identity() {
            return self;
        }
        let voxels = std::mem::take(&mut self.voxels);
        self.voxels = map.to_canonical(voxels);
        let od = map.output_dims();
        let mut affine = [[0.0; 4]; 3];
        for (row, input) in affine.iter_mut().zip(&self.input_affine) {
            // Origin: the position of the input voxel that became canonical (0, 0, 0).
            let mut origin = input[3];
            for a in 0..3 {
                let col = input[map.perm[a]];
                if map.flip[a] {
                    origin += col * (od[a] - 1) as f64;
                    row[a] = -col;
                } else {
                    row[a] = col;
                }
            }
            row[3] = origin;
        }
        let sp = self.spacing_mm;
        self.spacing_mm = [sp[map.perm[0]], sp[map.perm[1]], sp[map.perm[2]]];
        self.dims = od;
        self.affine = affine;
        self.axis_map = map;
        self
    }
}

/// The permutation and flips that make each voxel axis point along +L, +P, +S.
fn axis_map_for(affine: &Affine, dims: [usize; 3]) -> AxisMap {
    // For each patient axis (L, P, S), pick the voxel axis whose direction is most aligned.
    let mut used = [false; 3];
    let mut perm = [0usize; 3];
    let mut flip = [false; 3];
    for patient in 0..3 {
        let mut best = (f64::NEG_INFINITY, 0usize, false);
        for (voxel, used_v) in used.iter().enumerate() {
            if *used_v {
                continue;
            }
            let col = [affine[0][voxel], affine[1][voxel], affine[2][voxel]];
            let norm = (col[0] * col[0] + col[1] * col[1] + col[2] * col[2]).sqrt();
            if norm == 0.0 {
                continue;
            }
            let c = col[patient] / norm;
            if c.abs() > best.0 {
                best = (c.abs(), voxel, c < 0.0);
            }
        }
        if best.0.is_finite() {
            used[best.1] = true;
            perm[patient] = best.1;
            flip[patient] = best.2;
        } else {
            // A degenerate affine: keep the file's order.
            return AxisMap::identity(dims);
        }
    }
    AxisMap {
        perm,
        flip,
        input_dims: dims,
    }
}

/// The format of some bytes, judged by content first and the file name second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Dicom,
    Nifti,
    Image,
}

/// Sniff the format. A `.dcm` that holds text is not DICOM; a DICOM file without the `.dcm`
/// suffix (common from PACS) still is.
pub fn sniff(name: &Path, bytes: &[u8]) -> Result<Format> {
    if bytes.is_empty() {
        return Err(Error::EmptyFile(name.to_path_buf()));
    }
    if bytes.len() >= 132 && &bytes[128..132] == b"DICM" {
        return Ok(Format::Dicom);
    }
    if bytes.starts_with(&[0x89, b'P', b'N', b'G']) || bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Ok(Format::Image);
    }
    if bytes.starts_with(&[0x1F, 0x8B]) {
        return Ok(Format::Nifti);
    }
    if nii::looks_like_nifti(bytes) {
        return Ok(Format::Nifti);
    }
    // A DICOM data set without the 128-byte preamble starts with a group 0x0002 or 0x0008 tag.
    if bytes.len() >= 8 && (bytes[0..2] == [0x02, 0x00] || bytes[0..2] == [0x08, 0x00]) {
        return Ok(Format::Dicom);
    }
    let ext = name
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let what = if bytes.iter().take(512).all(|b| b.is_ascii()) {
        "it looks like a text file"
    } else {
        "its content matches none of the supported formats"
    };
    Err(Error::UnknownFormat {
        path: name.to_path_buf(),
        reason: format!(
            "{what}{}; ctscreen reads DICOM (.dcm or no suffix), NIfTI (.nii, .nii.gz), PNG and JPEG",
            if ext.is_empty() {
                String::new()
            } else {
                format!(" although it is named .{ext}")
            }
        ),
    })
}

/// Load named in-memory files (what the browser hands over, or what the CLI read): one NIfTI or
/// image, or any number of DICOM files forming a series.
pub fn load_bytes(files: Vec<(PathBuf, Vec<u8>)>, limits: &Limits) -> Result<CtVolume> {
    load_bytes_with(files, limits, &mut |_| None)
}

/// The pixels of one DICOM file (by name) decoded elsewhere by [`dicom::decode_file`] from the
/// same bytes, or `None` to decode them here: the page's pool of workers decodes a series'
/// files in parallel while they are read.
pub type Predecoded<'a> = &'a mut dyn FnMut(&Path) -> Option<Vec<i16>>;

/// [`load_bytes`], taking what `predecoded` gives for single-frame DICOM files instead of
/// decoding them (the same decoder on the same bytes: the same volume).
pub fn load_bytes_with(
    files: Vec<(PathBuf, Vec<u8>)>,
    limits: &Limits,
    predecoded: Predecoded,
) -> Result<CtVolume> {
    if files.is_empty() {
        return Err(Error::NoSlices("no files were given".into()));
    }
    if files.len() == 1 {
        sniff(&files[0].0, &files[0].1)?;
    }
    // Several files (a folder as PACS and CDs export it): what is not an image — text, tables,
    // PDFs, a DICOMDIR — is skipped and listed, and the images are read.
    let mut kept = Vec::with_capacity(files.len());
    let mut formats = Vec::with_capacity(files.len());
    let mut skipped = Vec::new();
    for (name, bytes) in files {
        match sniff(&name, &bytes) {
            Ok(f) => {
                formats.push(f);
                kept.push((name, bytes));
            }
            Err(e) => skipped.push(SkippedFile::from_error(&name, &e)),
        }
    }
    let files = kept;
    let n_dicom = formats.iter().filter(|f| **f == Format::Dicom).count();
    if n_dicom > 0 && n_dicom < files.len() {
        // A DICOM series with a NIfTI or picture beside it: the series is the scan.
        let mut dicoms = Vec::with_capacity(n_dicom);
        for ((name, bytes), f) in files.into_iter().zip(&formats) {
            if *f == Format::Dicom {
                dicoms.push((name, bytes));
            } else {
                skipped.push(SkippedFile {
                    file: name.display().to_string(),
                    kind: "not_in_series",
                    reason: "a NIfTI or picture beside a DICOM series (the series was read)".into(),
                });
            }
        }
        return with_skipped(dicom::from_files_with(dicoms, limits, predecoded), skipped);
    }
    if files.is_empty() {
        return Err(Error::NoSlices(format!(
            "none of the {} files is a DICOM, NIfTI, PNG or JPEG image ({})",
            skipped.len(),
            skipped_kinds(&skipped)
        )));
    }
    if n_dicom == files.len() {
        return with_skipped(dicom::from_files_with(files, limits, predecoded), skipped);
    }
    if files.len() > 1 {
        return Err(Error::InvalidArgument(format!(
            "{} files were given together but only DICOM files can form a series; give one \
             NIfTI or image file at a time",
            files.len()
        )));
    }
    let Some((name, bytes)) = files.into_iter().next() else {
        return Err(Error::NoSlices("no files were given".into()));
    };
    let vol = match formats[0] {
        Format::Nifti => nii::from_bytes(&name, &bytes, limits),
        Format::Image => raster::from_bytes(&name, &bytes),
        Format::Dicom => dicom::from_files_with(vec![(name, bytes)], limits, predecoded),
    };
    with_skipped(vol, skipped)
}

/// Add the files skipped before reading to the volume's list, with one line saying how many and
/// of which kinds.
fn with_skipped(vol: Result<CtVolume>, skipped: Vec<SkippedFile>) -> Result<CtVolume> {
    let mut vol = vol?;
    if !skipped.is_empty() {
        vol.meta.warnings.push(format!(
            "{} file(s) that are not images were skipped: {}",
            skipped.len(),
            skipped_kinds(&skipped)
        ));
        let mut all = skipped;
        all.append(&mut vol.meta.skipped_files);
        vol.meta.skipped_files = all;
    }
    Ok(vol)
}

/// "3 text (labels.tsv, README, …), 1 other" for a list of skipped files.
fn skipped_kinds(skipped: &[SkippedFile]) -> String {
    let kind = |s: &SkippedFile| {
        if s.reason.contains("looks like a text file") {
            "text"
        } else if s.kind == "empty_file" {
            "empty"
        } else if s.kind == "not_in_series" {
            "not in the series"
        } else {
            "other"
        }
    };
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for s in skipped {
        let k = kind(s);
        let name = Path::new(&s.file)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(&s.file);
        match groups.iter_mut().find(|(g, _)| *g == k) {
            Some((_, names)) => names.push(name),
            None => groups.push((k, vec![name])),
        }
    }
    groups
        .iter()
        .map(|(k, names)| {
            let shown: Vec<&str> = names.iter().take(3).copied().collect();
            format!(
                "{} {k} ({}{})",
                names.len(),
                shown.join(", "),
                if names.len() > 3 { ", …" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Load paths: files, or directories (walked recursively, hidden files skipped).
pub fn load_paths(paths: &[PathBuf], limits: &Limits) -> Result<CtVolume> {
    let mut files = Vec::new();
    for p in paths {
        collect_files(p, &mut files)?;
    }
    if files.is_empty() {
        return Err(Error::NoSlices(format!(
            "no files found in {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    files.sort();
    let mut named = Vec::with_capacity(files.len());
    for f in files {
        let bytes = std::fs::read(&f).map_err(|e| Error::io(&f, e))?;
        named.push((f, bytes));
    }
    load_bytes(named, limits)
}

fn collect_files(p: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let meta = std::fs::metadata(p).map_err(|e| Error::io(p, e))?;
    if meta.is_dir() {
        let rd = std::fs::read_dir(p).map_err(|e| Error::io(p, e))?;
        for entry in rd {
            let entry = entry.map_err(|e| Error::io(p, e))?;
            let path = entry.path();
            let hidden = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            // Everything else is read: what is not an image is then skipped and listed.
            if !hidden {
                collect_files(&path, out)?;
            }
        }
    } else {
        out.push(p.to_path_buf());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_map_round_trips_and_finds_flips() {
        // Input axes: 0 → −L (RAS-like x), 1 → −P, 2 → +S, as a NIfTI in RAS would be.
        let dims = [3, 2, 2];
        let affine = [
            [-1.0, 0.0, 0.0, 10.0],
            [0.0, -1.0, 0.0, 20.0],
            [0.0, 0.0, 2.0, -5.0],
        ];
        let map = axis_map_for(&affine, dims);
        assert_eq!(map.perm, [0, 1, 2]);
        assert_eq!(map.flip, [true, true, false]);
        let input: Vec<u32> = (0..12).collect();
        let canon = map.to_canonical(input.clone());
        assert_eq!(canon[0], 2 + 3); // input (x=2, y=1, z=0)
        assert_eq!(map.to_input(&canon), input);
    }

    #[test]
    fn canonical_volume_keeps_patient_positions() {
        // A permuted, flipped input: voxel axis 0 → +S, 1 → −L, 2 → +P.
        let dims = [2, 3, 4];
        let affine = [
            [0.0, -0.5, 0.0, 7.0],
            [0.0, 0.0, 0.8, -3.0],
            [2.0, 0.0, 0.0, 100.0],
        ];
        let voxels: Vec<i16> = (0..24).collect();
        let vol = CtVolume::new(
            voxels.clone(),
            dims,
            [2.0, 0.5, 0.8],
            affine,
            IntensityScale::Hounsfield,
            InputKind::Nifti,
        )
        .canonicalise();
        assert_eq!(vol.dims, [3, 4, 2]);
        assert_eq!(vol.spacing_mm, [0.5, 0.8, 2.0]);
        // Every canonical voxel sits where the input voxel with the same value sat.
        let pos = |a: &Affine, i: [usize; 3]| -> [f64; 3] {
            let mut p = [0.0; 3];
            for r in 0..3 {
                p[r] =
                    a[r][0] * i[0] as f64 + a[r][1] * i[1] as f64 + a[r][2] * i[2] as f64 + a[r][3];
            }
            p
        };
        for z in 0..2 {
            for y in 0..4 {
                for x in 0..3 {
                    let v = vol.voxels[x + 3 * (y + 4 * z)] as usize;
                    let input_idx = [v % 2, (v / 2) % 3, v / 6];
                    assert_eq!(pos(&vol.affine, [x, y, z]), pos(&affine, input_idx));
                }
            }
        }
        // Axes now point to +L, +P, +S.
        assert!(vol.affine[0][0] > 0.0 && vol.affine[1][1] > 0.0 && vol.affine[2][2] > 0.0);
    }

    #[test]
    fn sniff_names_the_problem() {
        let e = sniff(Path::new("a.dcm"), b"hello world").unwrap_err();
        assert!(e.to_string().contains("text file"), "{e}");
        assert!(e.to_string().contains(".dcm"), "{e}");
        assert!(matches!(
            sniff(Path::new("e.dcm"), b""),
            Err(Error::EmptyFile(_))
        ));
    }
}
