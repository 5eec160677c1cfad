//! The NIfTI entry point (.nii and .nii.gz bytes).
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

use ctscreen::volume::{Limits, nii};

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_voxels: 1 << 22 };
    let _ = nii::from_bytes(Path::new("f.nii"), data, &limits);
});
