//! `ctscreen`: train, evaluate, analyse and benchmark the multi-task COVID-19 CT model.
//! Research software, not a medical device.

mod analyze;
mod bench;
mod calibrate_ood;
mod common;
mod compare;
mod eval;
mod info;
#[cfg(feature = "train")]
mod train;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use ctscreen::error::Result;

use common::{DEFAULT_MODEL, DeviceArg};

// The readers' allocation budget (see `ctscreen::alloc_cap`) holds only under this allocator.
#[global_allocator]
static ALLOC: ctscreen::alloc_cap::CappedAlloc = ctscreen::alloc_cap::CappedAlloc;

#[derive(Parser)]
#[command(
    name = "ctscreen",
    version,
    about = "COVID-19 chest CT lesion segmentation and classification (research software, not a medical device)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train the multi-task model jointly on the shared datasets.
    #[cfg(feature = "train")]
    Train(Box<train::TrainArgs>),
    /// Write a shrunk copy of the training data (for moving it to a GPU machine; never commit it).
    #[cfg(feature = "train")]
    PrepareData {
        #[arg(long, default_value = "../shared/data")]
        data: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 256)]
        size: usize,
        /// How many Ma et al. slices to copy (the ones `train --unlabelled N` loads).
        #[arg(long, default_value_t = 1600)]
        unlabelled: usize,
    },
    /// Evaluate a model on labelled directories.
    Eval(eval::EvalArgs),
    /// Calibrate the out-of-distribution threshold: a percentile of the per-slice
    /// reconstruction error on validation images, written into the model's config.json.
    CalibrateOod {
        #[arg(long, default_value = DEFAULT_MODEL)]
        model: PathBuf,
        #[arg(long, default_value = "../shared/data")]
        data: PathBuf,
        #[arg(long, default_value_t = 99.0)]
        percentile: f64,
        #[command(flatten)]
        device: DeviceArg,
    },
    /// Write `model.q8` (the parameters as 8-bit integers, a quarter of f32: what the page
    /// downloads and every command then loads) beside a model directory's `model.bpk`.
    Quantize {
        #[arg(long, default_value = DEFAULT_MODEL)]
        model: PathBuf,
    },
    /// Analyse a CT (DICOM series, NIfTI) or a PNG/JPEG slice: lesions, lungs, report.
    Analyze(analyze::AnalyzeArgs),
    /// Compare a baseline and a follow-up scan of one patient: both analysed with one model,
    /// aligned along z by their lungs, and the change in every figure.
    Compare(compare::CompareArgs),
    /// Describe an input as the readers see it (one JSON object).
    Info(info::InfoArgs),
    /// The lung mask alone (no model): volume per side, slices with lung, and optionally the
    /// label map (1 right, 2 left) as .nii.gz on the input's grid. One JSON object.
    Lung(info::LungArgs),
    /// Print inference and training-step timings.
    Bench(bench::BenchArgs),
    /// Time loading (DICOM series, NIfTI, the JPEG 2000 series) and the whole pipeline on a
    /// synthetic 512²×N phantom, with each stage's share.
    BenchVolume(bench::BenchVolumeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        #[cfg(feature = "train")]
        Command::Train(a) => train::train(*a),
        #[cfg(feature = "train")]
        Command::PrepareData {
            data,
            out,
            size,
            unlabelled,
        } => {
            eprintln!(
                "{}",
                ctscreen::training::prepare::prepare_data(&data, &out, size, unlabelled)?
            );
            Ok(())
        }
        Command::Eval(a) => eval::eval(a),
        Command::CalibrateOod {
            model,
            data,
            percentile,
            device,
        } => calibrate_ood::calibrate_ood(&model, &data, percentile, device.device),
        Command::Quantize { model } => {
            let device = ctscreen::device::Backend::Flex.device()?;
            let path = ctscreen::weights::quantize_dir(&model, &device)?;
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            println!("{} ({size} bytes)", path.display());
            Ok(())
        }
        Command::Analyze(a) => analyze::analyze(a),
        Command::Compare(a) => compare::compare(a),
        Command::Info(a) => info::info(a),
        Command::Lung(a) => info::lung(a),
        Command::BenchVolume(a) => bench::bench_volume(a),
        Command::Bench(a) => bench::bench(a),
    }
}
