//! Inputs the fuzzers (`fuzz/`, `scripts/fuzz.sh`) found trouble with, kept as regression tests:
//! each must come back as an error, without a panic, and with a bounded peak allocation — what
//! the readers hold at once, measured by the same allocator the CLI and the page run under.

use std::path::{Path, PathBuf};

use ctscreen::alloc_cap::{self, CappedAlloc};
use ctscreen::volume::{Limits, dicom, load_bytes, nii};

#[global_allocator]
static ALLOC: CappedAlloc = CappedAlloc;

/// The most any finding may make the readers hold at once. The inputs are ≤ 10 KB; before the
/// budget, one of them made dicom-rs reserve 4 GB.
const PEAK_BOUND: usize = 64 << 20;

/// The inputs as the fuzz targets hand them over (see `fuzz/fuzz_targets/*.rs`); the error's
/// text, or `None` when the input was accepted.
fn run_like_the_fuzzer(name: &str, data: &[u8]) -> Option<String> {
    let limits = Limits {
        max_voxels: 1 << 22,
    };
    let r = if name.starts_with("dicom-") {
        dicom::from_files(dicom::fuzz_input_as_files(data), &limits).map(|_| ())
    } else if name.starts_with("nifti-") {
        nii::from_bytes(Path::new("f.nii"), data, &limits).map(|_| ())
    } else {
        load_bytes(vec![(PathBuf::from("f.png"), data.to_vec())], &limits).map(|_| ())
    };
    r.err().map(|e| e.to_string())
}

/// The regression inputs, by name (sorted).
fn findings() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no regression inputs in {}", dir.display());
    out
}

#[test]
fn fuzz_findings_are_clean_errors_with_bounded_peak_allocation() {
    for (name, bytes) in findings() {
        let (err, usage) = alloc_cap::measure(|| run_like_the_fuzzer(&name, &bytes));
        assert!(
            alloc_cap::installed(),
            "the budget allocator is not installed"
        );
        assert!(err.is_some(), "{name} should be refused");
        assert!(
            usage.peak_bytes < PEAK_BOUND,
            "{name}: peak allocation {} MB while refusing it ({})",
            usage.peak_bytes >> 20,
            err.unwrap_or_default()
        );
        // Each file alone, as the page's pool workers decode the files of a series: no panic,
        // and the same bound.
        if name.starts_with("dicom-") {
            for (file, data) in dicom::fuzz_input_as_files(&bytes) {
                let (r, usage) = alloc_cap::measure(|| dicom::decode_file(&file, &data).is_ok());
                assert!(
                    usage.peak_bytes < PEAK_BOUND,
                    "{name} decoded alone: peak allocation {} MB (ok: {r})",
                    usage.peak_bytes >> 20
                );
            }
        }
    }
}

/// The budget itself: a reservation past it fails as an error (what dicom-rs's fallible
/// reservations then report), while one within it succeeds.
#[test]
fn the_budget_refuses_a_forged_reservation() {
    let (r, usage) = alloc_cap::with_budget(1 << 20, || {
        let mut v: Vec<u8> = Vec::new();
        v.try_reserve_exact(4 << 30).map(|_| v.len())
    });
    assert!(
        r.is_err(),
        "a 4 GB reservation under a 1 MB budget must fail"
    );
    assert_eq!(usage.refused, 1);
    let (r, usage) = alloc_cap::with_budget(1 << 20, || {
        let mut v: Vec<u8> = Vec::new();
        v.try_reserve_exact(1000).map(|_| v.capacity())
    });
    assert!(r.is_ok_and(|c| c >= 1000));
    assert!(usage.peak_bytes >= 1000 && usage.refused == 0);
}
