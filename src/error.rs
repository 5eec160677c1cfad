//! One error type for the crate. Every variant names the file or the step that failed, so a
//! message is something a user can act on.

use std::path::PathBuf;

/// Errors of ctscreen, each saying what went wrong and with which file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or directory could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A directory the command needs does not exist.
    #[error("directory {0} does not exist or is not a directory")]
    MissingDir(PathBuf),
    /// An image file could not be decoded.
    #[error("cannot decode image {path}: {reason}")]
    Image { path: PathBuf, reason: String },
    /// An image decoded but its size is unusable.
    #[error("image {path} has unusable dimensions {width}x{height} (allowed 1..={max} per side)")]
    ImageSize {
        path: PathBuf,
        width: u32,
        height: u32,
        max: u32,
    },
    /// A mask does not fit its image.
    #[error("mask {mask} does not match image {image}: {reason}")]
    MaskMismatch {
        image: PathBuf,
        mask: PathBuf,
        reason: String,
    },
    /// A dataset directory holds nothing usable.
    #[error("no usable samples in {0}")]
    EmptyDataset(PathBuf),
    /// The weights file is corrupt, truncated, or does not fit the configured architecture.
    #[error("cannot load weights {path}: {reason}")]
    Weights { path: String, reason: String },
    /// The model configuration is missing or malformed.
    #[error("bad model config {path}: {reason}")]
    Config { path: String, reason: String },
    /// Tensor data could not be read back from the device.
    #[error("tensor readback failed: {0}")]
    Readback(String),
    /// An argument is out of range or inconsistent.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A compute device could not be initialised.
    #[error("cannot initialise device {device}: {reason}")]
    Device { device: String, reason: String },
    /// A file has no bytes at all.
    #[error("{0} is empty (0 bytes): the copy or download may have failed")]
    EmptyFile(PathBuf),
    /// The content is none of the formats ctscreen reads.
    #[error("cannot read {path}: {reason}")]
    UnknownFormat { path: PathBuf, reason: String },
    /// A DICOM file could not be parsed or decoded.
    #[error("DICOM file {path} is damaged or incomplete: {reason}")]
    Dicom { path: PathBuf, reason: String },
    /// The pixel data use a compression ctscreen cannot decode.
    #[error(
        "DICOM file {path} uses transfer syntax {name} ({uid}), which ctscreen cannot decode; \
         export the series uncompressed or as JPEG/JPEG 2000/JPEG-LS/RLE"
    )]
    UnsupportedTransferSyntax {
        path: PathBuf,
        uid: String,
        name: String,
    },
    /// A NIfTI file could not be parsed.
    #[error("NIfTI file {path} is damaged or incomplete: {reason}")]
    Nifti { path: PathBuf, reason: String },
    /// The declared volume is over the voxel budget; nothing was allocated.
    #[error(
        "{path} declares {voxels} voxels ({} MB in memory), more than the {budget} this \
         machine can hold; export fewer slices (the chest only) or a thicker reconstruction \
         (e.g. 1.25 mm instead of 0.625 mm), or crop or downsample the volume first",
        .voxels.saturating_mul(2) / 1_000_000
    )]
    TooLarge {
        path: PathBuf,
        voxels: u64,
        budget: u64,
    },
    /// Memory for the volume could not be reserved.
    #[error("not enough memory to load {path} ({bytes} bytes needed)")]
    OutOfMemory { path: PathBuf, bytes: u64 },
    /// The input is an image, but not a CT.
    #[error("{path} is {what}, not a CT; ctscreen analyses chest CT only")]
    NotCt { path: PathBuf, what: String },
    /// Nothing to analyse.
    #[error("no slices to analyse: {0}")]
    NoSlices(String),
    /// Files of one series disagree about their geometry.
    #[error("the DICOM series {series} has inconsistent geometry: {reason}")]
    InconsistentGeometry { series: String, reason: String },
    /// One or both scans of a follow-up comparison could not be analysed (each named).
    #[error("no comparison: {0}")]
    Compare(String),
}

/// Crate-wide result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A stable, machine-readable name of the error kind (used in JSON output and tests).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Io { .. } => "io",
            Error::MissingDir(_) => "missing_dir",
            Error::Image { .. } | Error::ImageSize { .. } => "image",
            Error::MaskMismatch { .. } => "mask_mismatch",
            Error::EmptyDataset(_) => "empty_dataset",
            Error::Weights { .. } => "weights",
            Error::Config { .. } => "config",
            Error::Readback(_) => "readback",
            Error::InvalidArgument(_) => "invalid_argument",
            Error::Device { .. } => "device",
            Error::EmptyFile(_) => "empty_file",
            Error::UnknownFormat { .. } => "unknown_format",
            Error::Dicom { .. } => "dicom",
            Error::UnsupportedTransferSyntax { .. } => "unsupported_transfer_syntax",
            Error::Nifti { .. } => "nifti",
            Error::TooLarge { .. } => "too_large",
            Error::OutOfMemory { .. } => "out_of_memory",
            Error::NotCt { .. } => "not_ct",
            Error::NoSlices(_) => "no_slices",
            Error::InconsistentGeometry { .. } => "inconsistent_geometry",
            Error::Compare(_) => "compare",
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
