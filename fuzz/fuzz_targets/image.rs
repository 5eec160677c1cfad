//! The PNG/JPEG entry point, through format sniffing as the page and CLI do.
#![no_main]
use libfuzzer_sys::fuzz_target;

// The readers' allocation budget holds only under this allocator (as in the CLI and the page).
#[global_allocator]
static ALLOC: ctscreen::alloc_cap::CappedAlloc = ctscreen::alloc_cap::CappedAlloc;
use std::path::PathBuf;

use ctscreen::volume::{Limits, load_bytes};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_voxels: 1 << 22,
    };
    let _ = load_bytes(vec![(PathBuf::from("f.png"), data.to_vec())], &limits);
});
