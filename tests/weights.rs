//! Weights round-trip through bytes, and bad weights or configs are errors, never panics.

use burn::prelude::*;
use ctscreen::inference::predict;
use ctscreen::model::MultiTaskConfig;
use ctscreen::weights::{self, ShippedConfig, config_from_bytes, model_from_bytes, to_bytes};

fn tiny() -> MultiTaskConfig {
    MultiTaskConfig::new()
        .with_base_width(4)
        .with_levels(3)
        .with_cls_hidden(8)
}

fn input(size: usize) -> Vec<f32> {
    (0..size * size)
        .map(|i| ((i * 37) % 101) as f32 / 100.0)
        .collect()
}

#[test]
fn f16_bytes_reload_to_nearly_the_same_outputs() {
    let device = Device::flex();
    let model = tiny().init(&device);
    let bytes = to_bytes(&model).unwrap();
    let reloaded = model_from_bytes(&tiny(), bytes, &device, "mem").unwrap();
    let x = input(32);
    let a = predict(&model, &[x.as_slice()], 32, true, &device).unwrap();
    let b = predict(&reloaded, &[x.as_slice()], 32, true, &device).unwrap();
    for (p, q) in a[0].seg_probs.iter().zip(&b[0].seg_probs) {
        assert!(
            (p - q).abs() < 2e-2,
            "f16 storage changes probabilities by < 0.02: {p} vs {q}"
        );
    }
    assert!((a[0].p_covid() - b[0].p_covid()).abs() < 2e-2);
}

#[test]
fn truncated_and_garbage_weights_are_errors() {
    let device = Device::flex();
    let bytes = to_bytes(&tiny().init(&device)).unwrap();
    for bad in [
        bytes[..bytes.len() / 2].to_vec(),
        b"not a burnpack".to_vec(),
        Vec::new(),
    ] {
        let err = model_from_bytes(&tiny(), bad, &device, "bad.bpk").unwrap_err();
        assert!(err.to_string().contains("bad.bpk"), "{err}");
    }
}

#[test]
fn weights_that_do_not_fit_the_config_are_errors() {
    let device = Device::flex();
    let bytes = to_bytes(&tiny().init(&device)).unwrap();
    let wider = tiny().with_base_width(8);
    let err = model_from_bytes(&wider, bytes, &device, "w.bpk").unwrap_err();
    assert!(err.to_string().contains("do not fit"), "{err}");
}

#[test]
fn config_json_round_trips_and_bad_json_is_an_error() {
    let cfg = ShippedConfig::new("t".into(), tiny()).with_ood_threshold(Some(0.01));
    let dir = std::env::temp_dir().join(format!("ctscreen-w-{}", std::process::id()));
    let device = Device::flex();
    weights::save_dir(&dir, &cfg, &tiny().init(&device)).unwrap();
    let loaded = weights::load_dir(&dir, &device).unwrap();
    assert_eq!(loaded.config, cfg);
    assert!(config_from_bytes(b"{not json", "c.json").is_err());
    assert!(config_from_bytes(br#"{"version":"x","model":{"base_width":0}}"#, "c.json").is_err());
    std::fs::remove_dir_all(&dir).ok();
}

/// The shipped models' `model.q8` are their `model.bpk` quantized (a retrained record without
/// `ctscreen quantize` would otherwise ship stale weights), and the int8 model's outputs stay the
/// record's within rounding on a CT-like input.
#[test]
fn shipped_int8_weights_are_the_quantized_record_with_the_same_outputs() {
    let device = Device::flex();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    for name in ["ctscreen-v1", "ctscreen-v2"] {
        let dir = root.join(name);
        let record = weights::load_record_dir(&dir, &device).unwrap();
        let shipped = std::fs::read(dir.join(weights::INT8_FILE)).unwrap();
        assert!(
            weights::int8::encode(&record.model) == shipped,
            "{name}: model.q8 is not model.bpk quantized: run `ctscreen quantize --model models/{name}`"
        );
        let int8 = weights::load_dir(&dir, &device).unwrap();
        let size = record.config.input_size;
        // A disc of "lung" (dark) with brighter blobs, on the model's grid.
        let x: Vec<f32> = (0..size * size)
            .map(|i| {
                let (x, y) = (
                    (i % size) as f32 / size as f32 - 0.5,
                    (i / size) as f32 / size as f32 - 0.5,
                );
                let r = (x * x + y * y).sqrt();
                if r > 0.45 {
                    0.6
                } else if ((x * 40.0).sin() * (y * 30.0).cos()) > 0.7 {
                    0.5
                } else {
                    0.1
                }
            })
            .collect();
        let a = predict(&record.model, &[x.as_slice()], size, true, &device).unwrap();
        let b = predict(&int8.model, &[x.as_slice()], size, true, &device).unwrap();
        // A pixel on a class boundary can move far on a small change of logits: judge the mean
        // and the share of pixels that move more than 0.1.
        let d: Vec<f32> = a[0]
            .seg_probs
            .iter()
            .zip(&b[0].seg_probs)
            .map(|(p, q)| (p - q).abs())
            .collect();
        let mean = d.iter().sum::<f32>() / d.len() as f32;
        let moved = d.iter().filter(|&&x| x > 0.1).count() as f32 / d.len() as f32;
        let dp = (a[0].p_covid() - b[0].p_covid()).abs();
        eprintln!(
            "{name}: int8 vs f16: mean |Δ prob| {mean:.5}, {:.3} % of values moved > 0.1, |Δ p| {dp:.4}",
            moved * 100.0
        );
        assert!(
            mean < 0.005 && moved < 0.005 && dp < 0.02,
            "{name}: mean {mean}, moved {moved}, |Δ p| {dp}"
        );
    }
}
