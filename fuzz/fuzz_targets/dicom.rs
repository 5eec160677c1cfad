//! The DICOM entry point with arbitrary bytes: one file, or two files split at the first byte's
//! position (a series). Any error is fine; a panic or abort is a bug.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;

use ctscreen::volume::{Limits, dicom};

fuzz_target!(|data: &[u8]| {
    // A small budget keeps forged sizes from exhausting the fuzzer's memory: the refusal path
    // is what is exercised.
    let limits = Limits { max_voxels: 1 << 22 };
    let files = match data.first() {
        Some(&k) if k % 4 == 0 && data.len() > 2 => {
            let cut = 1 + (k as usize * 7) % (data.len() - 1);
            vec![
                (PathBuf::from("a.dcm"), data[1..cut].to_vec()),
                (PathBuf::from("b.dcm"), data[cut..].to_vec()),
            ]
        }
        _ => vec![(PathBuf::from("f.dcm"), data.to_vec())],
    };
    let _ = dicom::from_files(files, &limits);
});
