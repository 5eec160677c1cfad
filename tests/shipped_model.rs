//! The shipped weights load into the architecture and reproduce the outputs recorded when they
//! were shipped (`reference.json`, written with `UPDATE_REFERENCE=ctscreen-vN cargo test --test shipped_model`).

use std::path::PathBuf;

use burn::prelude::*;
use ctscreen::inference::predict;
use ctscreen::weights::load_dir;

/// A deterministic chest-like phantom: dark background, a bright body ellipse, two dark lungs
/// with a brighter patch in one of them.
fn phantom(size: usize) -> Vec<f32> {
    let mut v = vec![0.0f32; size * size];
    let s = size as f32;
    for y in 0..size {
        for x in 0..size {
            let (u, w) = (x as f32 / s - 0.5, y as f32 / s - 0.5);
            let mut val = 0.02;
            if (u / 0.45).powi(2) + (w / 0.35).powi(2) < 1.0 {
                val = 0.75;
            }
            for cx in [-0.2f32, 0.2] {
                if ((u - cx) / 0.15).powi(2) + (w / 0.25).powi(2) < 1.0 {
                    val = 0.12;
                }
            }
            if ((u - 0.22) / 0.06).powi(2) + ((w - 0.05) / 0.08).powi(2) < 1.0 {
                val = 0.45;
            }
            v[y * size + x] = val;
        }
    }
    v
}

/// Both shipped models: v2 (the default) and v1 (`--model models/ctscreen-v1`).
#[test]
fn shipped_weights_reproduce_recorded_outputs() {
    for name in ["ctscreen-v1", "ctscreen-v2"] {
        check_model(name);
    }
}

fn check_model(name: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(name);
    let device = Device::flex();
    let loaded = load_dir(&dir, &device).expect("the shipped model loads into the architecture");
    let size = loaded.config.input_size;
    let x = phantom(size);
    let pred = predict(&loaded.model, &[x.as_slice()], size, true, &device)
        .unwrap()
        .remove(0);
    let lesion_px = pred.class_map().iter().filter(|&&c| c > 0).count();
    let hw = size * size;
    let mean_bg: f32 = pred.seg_probs[..hw].iter().sum::<f32>() / hw as f32;
    let got = serde_json::json!({
        "p_covid": pred.p_covid(),
        "lesion_px": lesion_px,
        "mean_p_background": mean_bg,
        "recon_mse": pred.recon_mse,
    });
    let ref_path = dir.join("reference.json");
    if std::env::var("UPDATE_REFERENCE").as_deref() == Ok(name) {
        std::fs::write(&ref_path, serde_json::to_string_pretty(&got).unwrap()).unwrap();
        return;
    }
    let text =
        std::fs::read_to_string(&ref_path).expect("reference.json is shipped with the model");
    let want: serde_json::Value = serde_json::from_str(&text).unwrap();
    let close = |k: &str, tol: f64| {
        let (a, b) = (got[k].as_f64().unwrap(), want[k].as_f64().unwrap());
        assert!((a - b).abs() <= tol, "{name} {k}: got {a}, recorded {b}");
    };
    close("p_covid", 1e-3);
    close("mean_p_background", 1e-3);
    close("recon_mse", 1e-4);
    let (a, b) = (
        got["lesion_px"].as_f64().unwrap(),
        want["lesion_px"].as_f64().unwrap(),
    );
    assert!(
        (a - b).abs() <= 0.01 * b.max(100.0),
        "{name} lesion_px: got {a}, recorded {b}"
    );
}
