//! The DICOM entry points with arbitrary bytes: one file, or two files split at the first
//! byte's position (a series), each file decoded alone as the page's pool does, then the series.
//! Any error is fine; a panic or abort is a bug.
#![no_main]
use libfuzzer_sys::fuzz_target;

// The readers' allocation budget holds only under this allocator (as in the CLI and the page).
#[global_allocator]
static ALLOC: ctscreen::alloc_cap::CappedAlloc = ctscreen::alloc_cap::CappedAlloc;

use ctscreen::volume::{Limits, dicom};

fuzz_target!(|data: &[u8]| {
    // A small budget keeps forged sizes from exhausting the fuzzer's memory: the refusal path
    // is what is exercised.
    let limits = Limits {
        max_voxels: 1 << 22,
    };
    let files = dicom::fuzz_input_as_files(data);
    // What the page's pool workers run on each file of a series being read.
    for (name, bytes) in &files {
        let _ = dicom::decode_file(name, bytes);
    }
    let _ = dicom::from_files(files, &limits);
});
