//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// `../shared/data`, or `None` (with a loud note) when it is missing outside CI. Under
/// `CI=true` a missing folder fails the test: CI always has it.
pub fn shared_data() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    if dir.join("medseg-covid/train/images").is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "CI=true but {} is missing: CI must have the shared data beside the clone",
            dir.display()
        );
    }
    eprintln!(
        "\n!!! SKIPPING: {} not found; this test needs the shared data !!!\n",
        dir.display()
    );
    None
}

pub fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ctscreen-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
