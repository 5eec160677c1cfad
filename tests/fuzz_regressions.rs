//! Inputs the fuzzers (`fuzz/`) found trouble with, kept as regression tests: each must come
//! back as an error, without a panic and without allocating gigabytes.

use std::path::{Path, PathBuf};

use ctscreen::volume::{Limits, dicom, load_bytes, nii};

/// The inputs as the fuzz targets hand them over (see `fuzz/fuzz_targets/*.rs`).
fn run_like_the_fuzzer(name: &str, data: &[u8]) -> bool {
    let limits = Limits {
        max_voxels: 1 << 22,
    };
    if name.starts_with("dicom-") {
        dicom::from_files(dicom::fuzz_input_as_files(data), &limits).is_err()
    } else if name.starts_with("nifti-") {
        nii::from_bytes(Path::new("f.nii"), data, &limits).is_err()
    } else {
        load_bytes(vec![(PathBuf::from("f.png"), data.to_vec())], &limits).is_err()
    }
}

#[test]
fn fuzz_findings_are_clean_errors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            run_like_the_fuzzer(&name, &bytes),
            "{} should be refused",
            path.display()
        );
        n += 1;
    }
    assert!(n > 0, "no regression inputs found in {}", dir.display());
}
