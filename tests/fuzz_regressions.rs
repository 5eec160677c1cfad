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
    // A refusal that comes after the parser reserved gigabytes is no refusal: the worker in the
    // browser would be dead by then. The peak resident size of this test process says whether
    // any input got that far (before the length check, one file took it past 4 GB).
    if let Some(peak_kb) = peak_rss_kb() {
        assert!(
            peak_kb < 512 * 1024,
            "peak RSS {} MB while refusing the fuzz findings",
            peak_kb / 1024
        );
    }
}

/// Peak resident set size of this process (Linux `VmHWM`), kB.
fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
