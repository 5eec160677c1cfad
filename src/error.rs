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
}

/// Crate-wide result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
