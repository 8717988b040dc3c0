//! Trains a small network on `(a + b) mod p` until it groks, and reports when the test-set
//! output distribution (mean LLR and KL against the memorization checkpoint) moved compared with
//! when test accuracy changed.
//!
//! ```text
//! cargo run --release --example grokking -- --help
//! ```

mod common;

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use crossover::crossover::Thresholds;
use crossover::grokking::{
    analyze, format_milestones, grokking_thresholds, train_grokking, write_grokking_reports,
    EmbeddingMlp, GrokkingConfig, ModularDataset, Operation, Reference,
};
use crossover::optim::Optimizer;
use crossover::report::PlotOptions;
use ndarray_rand::rand::rngs::StdRng;
use ndarray_rand::rand::SeedableRng;
use serde_json::{json, Map};

use common::{exit_on_error, progress_bar};

/// Operation that defines the labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OperationArg {
    /// (a + b) mod p
    Add,
    /// (a - b) mod p
    Subtract,
    /// (a * b) mod p
    Multiply,
}

/// Grokking on modular arithmetic: memorization, late generalization, and the order of the
/// information and behavior crossovers along the training epochs.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Small preset for a fast check: modulus 59 and training fraction 0.4 unless given.
    #[arg(long)]
    quick: bool,
    /// Modulus p; operands and classes are 0..p [default: 97, or 59 with --quick].
    #[arg(long)]
    modulus: Option<usize>,
    /// Fraction of the p^2 pairs used for training [default: 0.3, or 0.4 with --quick].
    #[arg(long)]
    train_fraction: Option<f64>,
    /// Operation that defines the labels.
    #[arg(long, value_enum, default_value = "add")]
    operation: OperationArg,
    /// Hidden width of the network.
    #[arg(long, default_value_t = 256)]
    hidden: usize,
    /// AdamW learning rate.
    #[arg(long, default_value_t = 1e-2)]
    learning_rate: f32,
    /// AdamW decoupled weight decay.
    #[arg(long, default_value_t = 1.0)]
    weight_decay: f32,
    /// AdamW beta1.
    #[arg(long, default_value_t = 0.9)]
    beta1: f32,
    /// AdamW beta2.
    #[arg(long, default_value_t = 0.98)]
    beta2: f32,
    /// AdamW epsilon.
    #[arg(long, default_value_t = 1e-8)]
    epsilon: f32,
    /// Maximum number of full-batch epochs.
    #[arg(long, default_value_t = 3000)]
    epochs: usize,
    /// Evaluate the test split every this many epochs.
    #[arg(long, default_value_t = 1)]
    eval_every: usize,
    /// Stop this many epochs after test accuracy first reaches --stop-accuracy.
    #[arg(long, default_value_t = 200)]
    stop_patience: usize,
    /// Test accuracy in percent that starts the countdown to stopping.
    #[arg(long, default_value_t = 99.0)]
    stop_accuracy: f64,
    /// Train all --epochs without stopping early.
    #[arg(long)]
    no_early_stop: bool,
    /// Compare against this epoch's checkpoint instead of the memorization epoch.
    #[arg(long)]
    reference_epoch: Option<usize>,
    /// Also record every metric against the initialisation (epoch 0).
    #[arg(long)]
    against_init: bool,
    /// Test accuracy in percent that counts as grokked.
    #[arg(long, default_value_t = 90.0)]
    grokking_accuracy: f64,
    /// Behavioral crossover: change of test accuracy in either direction, in percentage points.
    #[arg(long, default_value_t = 1.0)]
    accuracy_change: f64,
    /// Per-sample crossover: threshold on |mean LLR| in nats; also used for the signed and KL
    /// crossings.
    #[arg(long, default_value_t = 1.0)]
    llr_threshold: f64,
    /// Population crossover: threshold on |total LLR| over the test split, in nats.
    #[arg(long, default_value_t = 3.0)]
    population_threshold: f64,
    /// Draw the epoch axis of the figure on a linear scale instead of a log scale.
    #[arg(long)]
    linear_x: bool,
    /// Seed of the train/test split and the initialisation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Folder for epochs.csv, summary.json and grokking.svg.
    #[arg(long, default_value = "results/grokking")]
    out: PathBuf,
}

fn main() {
    let args = Args::parse();
    let started = Instant::now();
    if args.out.exists() && !args.out.is_dir() {
        eprintln!(
            "error: invalid --out = {}: a folder (this path is a file); pass a folder path",
            args.out.display()
        );
        std::process::exit(1);
    }
    let modulus = args.modulus.unwrap_or(if args.quick { 59 } else { 97 });
    let train_fraction = args
        .train_fraction
        .unwrap_or(if args.quick { 0.4 } else { 0.3 });
    let operation = match args.operation {
        OperationArg::Add => Operation::Add,
        OperationArg::Subtract => Operation::Subtract,
        OperationArg::Multiply => Operation::Multiply,
    };
    let thresholds = Thresholds {
        accuracy: args.accuracy_change / 100.0,
        per_sample_llr: args.llr_threshold,
        population_llr: args.population_threshold,
        ..grokking_thresholds()
    };
    exit_on_error(thresholds.validate());
    let config = GrokkingConfig {
        max_epochs: args.epochs,
        optimizer: Optimizer::Adam {
            learning_rate: args.learning_rate,
            beta1: args.beta1,
            beta2: args.beta2,
            epsilon: args.epsilon,
            weight_decay: args.weight_decay,
        },
        eval_every: args.eval_every,
        reference: args
            .reference_epoch
            .map_or(Reference::Memorization, Reference::Epoch),
        against_init: args.against_init,
        stop_accuracy: (!args.no_early_stop).then_some(args.stop_accuracy / 100.0),
        stop_patience: args.stop_patience,
    };
    exit_on_error(config.validate());

    let mut rng = StdRng::seed_from_u64(args.seed);
    let data = exit_on_error(ModularDataset::new(
        modulus,
        operation,
        train_fraction,
        &mut rng,
    ));
    let mut model = exit_on_error(EmbeddingMlp::init(modulus, args.hidden, &mut rng));
    eprintln!(
        "(a {} b) mod {modulus}: {} training and {} test pairs, hidden width {}",
        operation.symbol(),
        data.train.len(),
        data.test.len(),
        args.hidden
    );

    let bar = progress_bar(config.max_epochs as u64, "epochs");
    let training_started = Instant::now();
    let run = exit_on_error(train_grokking(&mut model, &data, &config, |stats| {
        bar.set_position(stats.epoch as u64);
        bar.set_prefix(format!(
            "train {:.1}% test {:.1}%",
            100.0 * stats.train_accuracy,
            100.0 * stats.test_accuracy
        ));
    }));
    bar.finish_and_clear();
    let training_seconds = training_started.elapsed().as_secs_f64();
    let analysis = exit_on_error(analyze(&run, &thresholds, args.grokking_accuracy / 100.0));

    let mut extra = Map::new();
    extra.insert(
        "task".into(),
        json!({
            "modulus": modulus,
            "operation": operation,
            "train_fraction": train_fraction,
            "train_pairs": data.train.len(),
            "test_pairs": data.test.len(),
        }),
    );
    extra.insert("hidden".into(), json!(args.hidden));
    extra.insert("training".into(), json!(config));
    extra.insert("seed".into(), json!(args.seed));
    extra.insert("training_seconds".into(), json!(training_seconds));
    let title = format!(
        "Grokking (a {} b) mod {modulus}, seed {}: test accuracy and mean LLR, reference checkpoint at epoch {}",
        operation.symbol(),
        args.seed,
        analysis
            .reference_epoch
            .map_or("-".to_string(), |epoch| epoch.to_string())
    );
    let files = exit_on_error(write_grokking_reports(
        &args.out,
        &run,
        &analysis,
        &thresholds,
        extra,
        &PlotOptions {
            log_x: !args.linear_x,
            title: Some(title),
            x_label: Some("epoch (optimizer steps)".into()),
        },
    ));

    println!("{}", format_milestones(&run, &analysis, &thresholds));
    println!(
        "final test accuracy {:.2}% at epoch {}",
        100.0 * analysis.final_test_accuracy,
        run.last_epoch
    );
    let plot = files
        .plot
        .as_ref()
        .map_or(String::new(), |path| format!(", {}", path.display()));
    println!(
        "wrote {}, {}{plot}",
        files.epochs.display(),
        files.summary.display()
    );
    println!(
        "wall time {:.1} s (training and evaluation {:.1} s)",
        started.elapsed().as_secs_f64(),
        training_seconds
    );
}
