//! The NIfTI entry point (.nii and .nii.gz bytes).
#![no_main]
use libfuzzer_sys::fuzz_target;

// The readers' allocation budget holds only under this allocator (as in the CLI and the page).
#[global_allocator]
static ALLOC: ctscreen::alloc_cap::CappedAlloc = ctscreen::alloc_cap::CappedAlloc;
use std::path::Path;

use ctscreen::volume::{Limits, nii};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_voxels: 1 << 22,
    };
    let _ = nii::from_bytes(Path::new("f.nii"), data, &limits);
});
