//! # ctscreen
//!
//! Multi-task COVID-19 chest CT analysis after Amyar et al. (Comput. Biol. Med. 126, 2020):
//! one shared encoder feeding a U-Net segmentation decoder (background, ground-glass opacity,
//! consolidation), a reconstruction decoder and an MLP classifier.
//!
//! The same pipeline (image → preprocess → model → postprocess) serves the native CLI and the
//! browser. Research software, **not a medical device, not for diagnosis**.
//!
//! Modules, one per stage:
//! - [`volume`]: DICOM series, NIfTI and PNG/JPEG into one canonical [`volume::CtVolume`].
//! - [`preprocess`]: grey conversion, letterboxing to the model grid and back.
//! - [`lung`]: the 3-D lung mask and the lesion rule's envelope.
//! - [`slices`]: one analysed slice, the lesion rule applied to it, its counts.
//! - [`pipeline`]: frame, prepare and finish slices (shared by the CLI and the web worker).
//! - [`pattern`], [`call`]: the lesions' pattern and the two-stage patient call built on it.
//! - [`report`]: volumes, involvement, severity, the patient-level call.
//! - [`compare`]: a baseline and a follow-up report aligned along z, and the change.
//! - [`data`]: the on-disk datasets (MedSeg, Ma et al., UCSD COVID-CT) as in-memory samples.
//! - [`model`]: the network and its [`model::MultiTaskConfig`].
//! - [`inference`]: one slice or batch in, probability maps, class probabilities and the
//!   reconstruction out.
//! - [`weights`]: loading and saving weights (from bytes too, for the browser).
//! - [`metrics`]: Dice, IoU, AUC and friends, pure functions.
//! - `training` (feature `train`): losses, augmentation, the joint training loop.

pub mod alloc_cap;
pub mod call;
pub mod compare;
pub mod data;
pub mod device;
pub mod dicom_seg;
pub mod error;
pub mod evaluate;
pub mod inference;
pub mod lung;
pub mod metrics;
pub mod model;
pub mod pattern;
pub mod phantom;
pub mod pipeline;
pub mod preprocess;
pub mod report;
pub mod rng;
pub mod slices;
pub mod volume;
pub mod weights;

#[cfg(feature = "train")]
pub mod training;

pub use error::{Error, Result};

// The allocation budget of the readers (see `alloc_cap`) holds in the browser too.
#[cfg(target_family = "wasm")]
#[global_allocator]
static ALLOC: alloc_cap::CappedAlloc = alloc_cap::CappedAlloc;

#[cfg(target_family = "wasm")]
pub mod web;

#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
mod wasm_libc;
