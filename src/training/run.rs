//! One training run: model initialisation (fresh, pretrained encoder, a previous stage, or a
//! checkpoint), the step loop, validation, logs and checkpoints.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;

use super::{
    EpochLog, RunState, TrainData, TrainingConfig, lr_at, make_batch, multitask_loss, upload,
};
use crate::error::{Error, Result};
use crate::evaluate::{self, ClsReport, SegReport};
use crate::model::MultiTaskModel;
use crate::rng::Rng;
use crate::weights::{self, ShippedConfig};

/// Options of one run that are not hyper-parameters.
pub struct RunOptions {
    pub out_dir: PathBuf,
    pub resume: bool,
    pub version: String,
    /// Grid side recorded in the shipped config.
    pub input_size: usize,
    /// Stop (and save) after this many minutes even if epochs remain.
    pub max_minutes: Option<f64>,
    /// Validate every this many epochs (and always at the end).
    pub val_every: usize,
    pub progress: bool,
}

fn write_err(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

fn weights_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Weights {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Train on `device` (an autodiff device), writing checkpoints, `log.jsonl` and the final model
/// (`config.json` + `model.bpk`) into `opts.out_dir`.
pub fn train(
    cfg: &TrainingConfig,
    data: &TrainData,
    device: &Device,
    opts: &RunOptions,
) -> Result<Vec<EpochLog>> {
    // With a time limit, the epoch count may shrink after the first epoch so that the learning
    // rate schedule still ends; the count actually used is rewritten into training.json.
    let mut cfg = cfg.clone();
    let cfg = &mut cfg;
    cfg.model.validate().map_err(Error::InvalidArgument)?;
    if !cfg.train_size.is_multiple_of(cfg.model.size_multiple()) || cfg.batch_size == 0 {
        return Err(Error::InvalidArgument(format!(
            "train_size must be a multiple of {} and batch_size > 0",
            cfg.model.size_multiple()
        )));
    }
    let out = &opts.out_dir;
    let ckpt = out.join("checkpoint");
    std::fs::create_dir_all(&ckpt).map_err(write_err(&ckpt))?;
    cfg.save(out.join("training.json"))
        .map_err(write_err(out))?;

    let resuming = opts.resume && ckpt.join("state.json").is_file();
    let mut model = initial_model(cfg, device, resuming)?;
    let mut optim = AdamConfig::new().with_epsilon(1e-7).init();
    let mut state = RunState {
        epoch: 0,
        step: 0,
        rng: Rng::new(cfg.seed),
    };
    if resuming {
        (model, optim, state) = load_checkpoint(&ckpt, model, optim)?;
        eprintln!("resumed from epoch {} (step {})", state.epoch, state.step);
    }

    let log_path = out.join("log.jsonl");
    let mut logs = Vec::new();
    let started = Instant::now();
    let bar = progress_bar(opts.progress, (cfg.epochs * cfg.steps_per_epoch) as u64);
    bar.set_position(state.step as u64);
    let past_limit = || {
        opts.max_minutes
            .is_some_and(|m| started.elapsed().as_secs_f64() > m * 60.0)
    };
    let mut stop = false;
    while state.epoch < cfg.epochs && !stop {
        let t0 = Instant::now();
        let mut sums = [0.0f64; 5];
        for _ in 0..cfg.steps_per_epoch {
            let vals;
            (model, vals) = train_step(
                model,
                &mut optim,
                cfg,
                data,
                &mut state.rng,
                state.step,
                device,
            )?;
            for (s, v) in sums.iter_mut().zip(&vals) {
                *s += *v as f64;
            }
            state.step += 1;
            bar.inc(1);
            let k = (state.step - state.epoch * cfg.steps_per_epoch).max(1) as f64;
            bar.set_message(format!(
                "ep {} loss {:.3} seg {:.3} weak {:.3} cls {:.3} rec {:.4}",
                state.epoch + 1,
                sums[0] / k,
                sums[1] / k,
                sums[2] / k,
                sums[3] / k,
                sums[4] / k
            ));
            if past_limit() {
                stop = true;
                break;
            }
        }
        state.epoch += 1;
        if let Some(limit) = opts.max_minutes
            && !stop
            && fit_epochs_to_time_limit(cfg, state.epoch, limit, started, logs.len() + 1)
        {
            cfg.save(out.join("training.json"))
                .map_err(write_err(out))?;
            bar.set_length((cfg.epochs * cfg.steps_per_epoch) as u64);
        }
        let steps = cfg.steps_per_epoch as f64;
        let last = state.epoch == cfg.epochs || stop;
        let (val_seg, val_cls) = if last || state.epoch.is_multiple_of(opts.val_every.max(1)) {
            validate(&model, cfg, data, device)?
        } else {
            (None, None)
        };
        let log = EpochLog {
            epoch: state.epoch,
            step: state.step,
            lr: lr_at(cfg, state.step.saturating_sub(1)),
            loss: sums[0] / steps,
            seg: sums[1] / steps,
            weak: sums[2] / steps,
            cls: sums[3] / steps,
            recon: sums[4] / steps,
            seconds: t0.elapsed().as_secs_f64(),
            val_seg,
            val_cls,
        };
        write_log(&log, &bar, &log_path)?;
        logs.push(log);
        save_checkpoint(&ckpt, &model, &optim, &state)?;
    }
    bar.finish_and_clear();
    let shipped = ShippedConfig::new(opts.version.clone(), cfg.model.clone())
        .with_input_size(opts.input_size);
    weights::save_dir(out, &shipped, &model.valid())?;
    Ok(logs)
}

/// The model a run starts from: a previous stage's weights (`init_from`), a pretrained encoder,
/// or fresh weights (also when resuming: the checkpoint replaces them).
fn initial_model(cfg: &TrainingConfig, device: &Device, resuming: bool) -> Result<MultiTaskModel> {
    Ok(match (&cfg.init_from, &cfg.pretrained, resuming) {
        (Some(dir), _, false) => {
            let loaded = weights::load_record_dir(Path::new(dir), device)?;
            if loaded.config.model != cfg.model {
                return Err(Error::Config {
                    path: dir.clone(),
                    reason: "--init-from model's architecture differs from this run's".into(),
                });
            }
            eprintln!("initialised from {dir}");
            loaded.model
        }
        (None, Some(pth), false) => {
            let m = cfg
                .model
                .init(device)
                .with_pretrained_encoder(Path::new(pth), device)?;
            eprintln!("encoder initialised from {pth}");
            m
        }
        _ => cfg.model.init(device),
    })
}

/// Weights, optimiser state, counters and RNG from the checkpoint folder.
fn load_checkpoint(
    ckpt: &Path,
    model: MultiTaskModel,
    optim: ModuleOptimizer,
) -> Result<(MultiTaskModel, ModuleOptimizer, RunState)> {
    let m = ckpt.join("model.bpk");
    let record = burn::store::ModuleRecord::load(&m).map_err(|e| weights_err(&m, e))?;
    let model = model
        .try_load_record(record)
        .map_err(|e| weights_err(&m, e))?;
    let o = ckpt.join("optim.bin");
    let optim = optim.load(&o).map_err(|e| weights_err(&o, e))?;
    let s = ckpt.join("state.json");
    let text = std::fs::read_to_string(&s).map_err(write_err(&s))?;
    let state = serde_json::from_str(&text).map_err(|e| Error::Config {
        path: s.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok((model, optim, state))
}

/// Checkpoint: full-precision weights, optimiser state, counters and RNG.
fn save_checkpoint(
    ckpt: &Path,
    model: &MultiTaskModel,
    optim: &ModuleOptimizer,
    state: &RunState,
) -> Result<()> {
    model
        .clone()
        .into_record()
        .save(ckpt.join("model.bpk"))
        .map_err(|e| weights_err(ckpt, e))?;
    optim
        .save(ckpt.join("optim.bin"))
        .map_err(|e| weights_err(ckpt, e))?;
    let s = serde_json::to_string(state).unwrap_or_default();
    std::fs::write(ckpt.join("state.json"), s).map_err(write_err(ckpt))
}

fn progress_bar(show: bool, total_steps: u64) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::new(total_steps);
    b.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} steps, ETA {eta} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    b
}

/// One optimiser step on a fresh batch; returns the model and the step's losses (total, seg,
/// weak, cls, recon).
#[allow(clippy::too_many_arguments)]
fn train_step(
    model: MultiTaskModel,
    optim: &mut ModuleOptimizer,
    cfg: &TrainingConfig,
    data: &TrainData,
    rng: &mut Rng,
    step: usize,
    device: &Device,
) -> Result<(MultiTaskModel, Vec<f32>)> {
    let w = [
        cfg.seg_weight,
        cfg.weak_weight,
        cfg.cls_weight,
        cfg.recon_weight,
    ];
    let mut hb = make_batch(data, cfg, rng);
    let [input, clean, seg_onehot, weak] = upload(&mut hb, device);
    let v1 = |v: &Vec<f32>| Tensor::<1>::from_data(TensorData::new(v.clone(), [hb.n]), device);
    let cls_onehot =
        Tensor::<2>::from_data(TensorData::new(hb.cls_onehot.clone(), [hb.n, 2]), device);
    let out = model.forward_with(input, cfg.tasks.recon);
    let losses = multitask_loss(
        out.seg_logits,
        seg_onehot,
        v1(&hb.seg_w),
        weak,
        v1(&hb.weak_w),
        out.cls_logits,
        cls_onehot,
        v1(&hb.cls_w),
        out.recon.map(|r| (r, clean)),
        w,
    );
    let mut grads = losses.total.backward();
    let lr = lr_at(cfg, step);
    let model = if cfg.encoder_lr_scale == 1.0 {
        let grads = GradientsParams::from_grads(grads, &model);
        optim.step(lr, model, grads)
    } else {
        // Two steps of one optimiser over disjoint parameter sets: Adam keeps its moments per
        // parameter, so this is exactly one step with two learning rates.
        let enc = model.encoder_grads(&mut grads);
        let rest = GradientsParams::from_grads(grads, &model);
        let model = optim.step(lr * cfg.encoder_lr_scale, model, enc);
        optim.step(lr, model, rest)
    };
    let parts = Tensor::cat(
        vec![
            losses.total,
            losses.seg,
            losses.weak,
            losses.cls,
            losses.recon,
        ],
        0,
    )
    .detach();
    let vals: Vec<f32> = parts
        .try_into_data()
        .map_err(|e| Error::Readback(format!("{e:?}")))?
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| Error::Readback(format!("{e:?}")))?;
    Ok((model, vals))
}

/// Under a time limit, shrink the epoch count (after `epochs_done`, `epochs_timed` of them timed
/// in this process) to what fits, so the learning-rate schedule still ends. Returns whether it
/// changed.
fn fit_epochs_to_time_limit(
    cfg: &mut TrainingConfig,
    epochs_done: usize,
    limit_min: f64,
    started: Instant,
    epochs_timed: usize,
) -> bool {
    let elapsed = started.elapsed().as_secs_f64();
    let per_epoch = elapsed / epochs_timed as f64;
    let fit = epochs_done + ((limit_min * 60.0 - elapsed) / per_epoch).floor().max(0.0) as usize;
    if fit >= cfg.epochs {
        return false;
    }
    eprintln!(
        "time limit {limit_min} min: {per_epoch:.0} s per epoch, so training stops after epoch {fit} instead of {}",
        cfg.epochs
    );
    cfg.epochs = fit.max(epochs_done);
    true
}

/// Validation figures of the current weights (the tasks being trained).
fn validate(
    model: &MultiTaskModel,
    cfg: &TrainingConfig,
    data: &TrainData,
    device: &Device,
) -> Result<(Option<SegReport>, Option<ClsReport>)> {
    let m = model.valid();
    let size = cfg.val_size;
    // The validation snapshot lives on the plain device under the autodiff one.
    let plain = device.clone().inner();
    let vs = if cfg.tasks.seg {
        Some(evaluate::eval_seg(&m, &data.val_seg, size, 8, &plain)?)
    } else {
        None
    };
    let vc = if cfg.tasks.cls {
        Some(evaluate::eval_cls(
            &m,
            &data.val_cls,
            size,
            16,
            0.5,
            false,
            &plain,
        )?)
    } else {
        None
    };
    Ok((vs, vc))
}

/// Print the epoch's line and append it to `log.jsonl`.
fn write_log(log: &EpochLog, bar: &indicatif::ProgressBar, log_path: &Path) -> Result<()> {
    let line = serde_json::to_string(log).unwrap_or_default();
    let msg = format!(
        "epoch {} loss {:.4} ({:.0}s){}{}",
        log.epoch,
        log.loss,
        log.seconds,
        log.val_seg
            .as_ref()
            .map(|s| format!(" val dice {:.4}", s.dice_mean))
            .unwrap_or_default(),
        log.val_cls
            .as_ref()
            .map(|c| format!(" val auc {:.4}", c.auc))
            .unwrap_or_default()
    );
    // A hidden bar (no terminal, e.g. a log file) drops println, so print directly there.
    if bar.is_hidden() {
        eprintln!("{msg}");
    } else {
        bar.println(msg);
    }
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .map_err(write_err(log_path))?;
    writeln!(f, "{line}").map_err(write_err(log_path))
}
