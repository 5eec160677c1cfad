//! Inputs the fuzzers (`fuzz/`) found trouble with, kept as regression tests: each must come
//! back as an error, without a panic and without allocating gigabytes.

use std::path::{Path, PathBuf};

use ctscreen::volume::{Limits, dicom, load_bytes, nii};

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

#[test]
fn fuzz_findings_are_clean_errors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let err = run_like_the_fuzzer(&name, &bytes);
        assert!(err.is_some(), "{} should be refused", path.display());
        // Inputs that once made a parser ask for gigabytes must be refused by the length
        // checks that run before the parser, not by the parser after its allocation (which
        // a malloc limit, not the resident size, would show).
        //
        // The NIfTI finding is a damaged gzip stream: flate2's miniz_oxide backend (the page,
        // the CLI) decodes its header and the extension check refuses it; with the zlib-rs
        // backend (which the `train` build gets through burn's PyTorch reader) zlib's stricter
        // check stops the stream at byte 125, before any header is read. Both are early.
        if name.contains("-oom-") {
            let err = err.unwrap_or_default();
            assert!(
                ["declares", "not a multiple of", "invalid size"]
                    .iter()
                    .any(|k| err.contains(k))
                    || (name.starts_with("nifti-") && err.contains("not a valid gzip stream")),
                "{name}: refused too late: {err}"
            );
        }
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
