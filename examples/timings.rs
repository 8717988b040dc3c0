//! Times the three benchmark workloads of a 784-128-10 MLP on the MNIST test set: one dense
//! evaluation, a 24-level global magnitude pruning sweep and one training epoch.
//!
//! `benches/reference/compare.py` runs this next to the numpy and JAX references and expects
//! exactly the options and the JSON object below.
//!
//! ```text
//! cargo run --release --example timings -- --threads 1 --what eval,sweep
//! cargo run --release --example timings -- --save-weights /tmp/random.safetensors
//! ```
//!
//! Timed: eval from the weights to the mean LLR against precomputed reference log-probabilities;
//! the whole sweep, ranking and pruning included; one training epoch, shuffle included. Not
//! timed: loading data and weights, the reference log-probabilities, the initialisation.

mod common;

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use crossover::data::{load_mnist_or_synthetic, resolve_mnist_dir, Dataset};
use crossover::incremental::IncrementalPruningSweep;
use crossover::metric::{llr_per_sample, Evaluation};
use crossover::mlp::Mlp;
use crossover::model::Model;
use crossover::optim::Optimizer;
use crossover::perturb::pruning_count;
use crossover::sweep::{default_pruning_levels, SweepResult};
use crossover::train::{train, TrainConfig};
use ndarray_rand::rand::rngs::StdRng;
use ndarray_rand::rand::SeedableRng;
use serde_json::{json, Value};

use common::{exit_on_error, progress_bar};

/// Time evaluation, a pruning sweep and a training epoch of a 784-128-10 MLP.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// safetensors model (layers.{i}.weight, layers.{i}.bias) [default: a seeded random
    /// 784-128-10 model].
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Folder with the four MNIST IDX files [default: $MNIST_DIR, else data/mnist]; seeded
    /// synthetic data of the same shape when none of them is there. Nothing is fetched.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Timed runs of each workload.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Untimed runs of eval and sweep before the timed ones.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Comma-separated workloads: eval, sweep, train.
    #[arg(long, value_delimiter = ',', default_value = "eval,sweep,train")]
    what: Vec<Workload>,
    /// Worker threads of rayon [default: one per CPU]; training runs on one thread.
    #[arg(long)]
    threads: Option<usize>,
    /// Seed of the random model, the synthetic data and the training shuffle.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object on stdout instead of a table.
    #[arg(long)]
    json: bool,
    /// Write the seeded random 784-128-10 model to this safetensors file and exit.
    #[arg(long)]
    save_weights: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Workload {
    Eval,
    Sweep,
    Train,
}

fn main() {
    let args = Args::parse();
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    if !(1..=256).contains(&threads) {
        eprintln!("error: invalid --threads = {threads}: pass a thread count from 1 to 256");
        std::process::exit(2);
    }
    if args.repeats == 0 {
        eprintln!("error: invalid --repeats = 0: pass at least 1");
        std::process::exit(2);
    }
    if let Err(error) = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
    {
        eprintln!("error: could not start {threads} rayon threads: {error}");
        std::process::exit(1);
    }

    let random_model = || {
        exit_on_error(Mlp::init(
            &[784, 128, 10],
            &mut StdRng::seed_from_u64(args.seed),
        ))
    };
    if let Some(path) = &args.save_weights {
        exit_on_error(random_model().save_safetensors(path));
        eprintln!(
            "wrote seeded random model (seed {}) to {}",
            args.seed,
            path.display()
        );
        return;
    }

    let data_dir = resolve_mnist_dir(args.data_dir.as_deref());
    let (kind, train_set, test_set) = exit_on_error(load_mnist_or_synthetic(&data_dir, args.seed));
    let (network, weights) = match &args.weights {
        Some(path) => (
            exit_on_error(Mlp::load_safetensors(path)),
            path.display().to_string(),
        ),
        None => (random_model(), format!("random(seed={})", args.seed)),
    };
    eprintln!(
        "data: {} from {}, weights: {weights} ({:?}), threads: {threads}",
        kind.name(),
        data_dir.display(),
        network.sizes()
    );

    let runs = args.what.len() * (args.repeats + args.warmup);
    let bar = progress_bar(runs as u64, "timing");
    let mut report = json!({
        "impl": "rust",
        "threads": threads,
        "data": kind.name(),
        "weights": weights,
        "eval_ms": [],
        "sweep_ms": [],
        "train_epoch_ms": [],
        "eval_mean_llr": null,
        "sweep": null,
        "train_loss": [],
    });
    let reference = exit_on_error(network.log_probs(&test_set.images));

    if args.what.contains(&Workload::Eval) {
        let mut mean_llr = 0.0;
        for run in 0..args.warmup + args.repeats {
            let started = Instant::now();
            mean_llr = exit_on_error(evaluate(&network, &test_set, &reference));
            if run >= args.warmup {
                push(&mut report["eval_ms"], milliseconds(started));
            }
            bar.inc(1);
        }
        report["eval_mean_llr"] = json!(mean_llr);
    }

    if args.what.contains(&Workload::Sweep) {
        let levels = default_pruning_levels();
        let sweep = IncrementalPruningSweep::default();
        let mut result = None;
        for run in 0..args.warmup + args.repeats {
            let started = Instant::now();
            result = Some(exit_on_error(sweep.run(
                &network,
                &levels,
                &test_set.images,
                &test_set.labels,
                |_| {},
            )));
            if run >= args.warmup {
                push(&mut report["sweep_ms"], milliseconds(started));
            }
            bar.inc(1);
        }
        let result = result.expect("at least one sweep ran");
        report["sweep"] = exit_on_error(sweep_json(&result, network.n_weights()));
    }

    if args.what.contains(&Workload::Train) {
        let config = TrainConfig {
            epochs: 1,
            batch_size: 64,
            optimizer: Optimizer::adam(1e-3),
            seed: args.seed,
        };
        for _ in 0..args.repeats {
            let mut trained = random_model();
            let started = Instant::now();
            let summaries = exit_on_error(train(
                &mut trained,
                train_set.images.view(),
                &train_set.labels,
                &config,
                |_| {},
            ));
            push(&mut report["train_epoch_ms"], milliseconds(started));
            push(&mut report["train_loss"], summaries[0].mean_loss);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();

    if args.json {
        println!("{report}");
    } else {
        print_summary(&report);
    }
}

/// Runs the eval workload: log-probabilities, per-sample LLR against `reference`, mean LLR.
fn evaluate(
    network: &Mlp,
    data: &Dataset,
    reference: &ndarray::Array2<f64>,
) -> crossover::Result<f64> {
    let log_probs = network.log_probs(&data.images)?;
    let evaluation = Evaluation::new(reference.view(), log_probs.view(), &data.labels)?;
    let llr = llr_per_sample(&evaluation);
    Ok(llr.sum() / llr.len() as f64)
}

fn sweep_json(result: &SweepResult, n_weights: usize) -> crossover::Result<Value> {
    let levels = result.levels();
    let pruned = levels
        .iter()
        .map(|&level| pruning_count(level, n_weights))
        .collect::<crossover::Result<Vec<_>>>()?;
    Ok(json!({
        "levels": levels,
        "pruned": pruned,
        "mean_llr": result.column("mean_llr")?,
        "total_llr": result.column("total_llr")?,
        "accuracy": result.column("accuracy")?,
        "mean_kl": result.column("mean_kl")?,
        "flip_rate": result.column("flip_rate")?,
    }))
}

fn milliseconds(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1e3
}

fn push(list: &mut Value, value: f64) {
    list.as_array_mut()
        .expect("timing fields are arrays")
        .push(json!(value));
}

fn median(values: &[Value]) -> Option<f64> {
    let mut numbers: Vec<f64> = values.iter().filter_map(Value::as_f64).collect();
    if numbers.is_empty() {
        return None;
    }
    numbers.sort_by(f64::total_cmp);
    let middle = numbers.len() / 2;
    Some(if numbers.len() % 2 == 0 {
        (numbers[middle - 1] + numbers[middle]) / 2.0
    } else {
        numbers[middle]
    })
}

fn print_summary(report: &Value) {
    println!(
        "impl rust, threads {}, data {}, weights {}",
        report["threads"], report["data"], report["weights"]
    );
    println!("{:<16} {:>10}  runs (ms)", "workload", "median ms");
    for (name, key) in [
        ("eval", "eval_ms"),
        ("sweep", "sweep_ms"),
        ("train epoch", "train_epoch_ms"),
    ] {
        let runs = report[key].as_array().expect("timing fields are arrays");
        if let Some(value) = median(runs) {
            let all: Vec<String> = runs
                .iter()
                .filter_map(Value::as_f64)
                .map(|ms| format!("{ms:.1}"))
                .collect();
            println!("{name:<16} {value:>10.2}  {}", all.join(", "));
        }
    }
    if let Value::Object(sweep) = &report["sweep"] {
        println!("\nlevel  pruned  mean_llr      accuracy  mean_kl     flip_rate");
        for index in 0..sweep["levels"].as_array().map_or(0, Vec::len) {
            println!(
                "{:<5}  {:>6}  {:<12.6}  {:<8.4}  {:<10.4e}  {:.4}",
                sweep["levels"][index].as_f64().unwrap_or(f64::NAN),
                sweep["pruned"][index],
                sweep["mean_llr"][index].as_f64().unwrap_or(f64::NAN),
                sweep["accuracy"][index].as_f64().unwrap_or(f64::NAN),
                sweep["mean_kl"][index].as_f64().unwrap_or(f64::NAN),
                sweep["flip_rate"][index].as_f64().unwrap_or(f64::NAN),
            );
        }
    }
}
