//! Perturb a trained classifier and find out whether its behavior breaks before its output
//! distribution shifts, or the other way round.
//!
//! At every perturbation level a [`Sweep`] measures two things against the unperturbed
//! reference model on a labelled evaluation set:
//!
//! - **behavior**: accuracy and the share of predictions that flip;
//! - **information**: the per-sample log-likelihood ratio of the true label,
//!   `LLR(x) = log p_perturbed(y|x) - log p_reference(y|x)`, its mean and total over the set, and
//!   the mean KL divergence `KL(reference || perturbed)`.
//!
//! A *crossover* is the first level at which a measure crosses its threshold ([`Thresholds`]).
//! By default, accuracy drops by more than one percentage point, `|mean LLR|` exceeds 1 nat (one
//! sample is enough to tell the models apart), or `|total LLR|` exceeds 3 nats (the whole set is
//! enough). The order of the accuracy and per-sample crossovers classifies the perturbation as
//! *behavior-first* (magnitude pruning: a few samples break while most distributions barely
//! move) or *information-first* (every distribution moves before any prediction changes).
//!
//! The seams are three traits, each with one method to implement: [`Model`] (log-probabilities
//! of a batch), [`Perturbation`] (a perturbed copy at a level) and [`Metric`] (a number from one
//! evaluation). Levels need not come from a perturbation: [`Sweep::run_models`] takes any sequence
//! of `(level, model)` pairs, such as training checkpoints, and a [`Recorder`] takes the
//! log-probabilities of models that the caller evaluates inside its own loop.
//!
//! The crate re-exports the versions of [`ndarray`] and [`ndarray_rand`] (with its `rand`) that
//! its API uses.
//!
//! # Example
//!
//! ```
//! use crossover::{GlobalMagnitudePruning, Direction, Mlp, Model, Sweep, Thresholds};
//! use ndarray::Array2;
//! use ndarray_rand::rand::{rngs::StdRng, Rng, SeedableRng};
//!
//! # fn main() -> crossover::Result<()> {
//! let mut rng = StdRng::seed_from_u64(0);
//! let network = Mlp::init(&[20, 32, 4], &mut rng)?;
//! let inputs = Array2::from_shape_fn((500, 20), |_| rng.random_range(-1.0f32..1.0));
//! // Label every input with the network's own prediction, so the reference is 100% accurate.
//! let labels = network.predict(&inputs)?;
//!
//! let levels = [0.0, 0.25, 0.5, 0.75, 0.9, 1.0];
//! let result = Sweep::default().run(
//!     &network,
//!     &GlobalMagnitudePruning::default(),
//!     &levels,
//!     &inputs,
//!     &labels,
//!     |_row| {},
//! )?;
//! let crossovers = result.crossovers(&Thresholds::default())?;
//!
//! assert_eq!(result.reference_accuracy, 1.0);
//! assert_eq!(result.column("mean_llr")?[0], 0.0);
//! // Removing every weight leaves only the output bias, so accuracy must have dropped by then.
//! assert!(crossovers.accuracy.first.is_some());
//! assert_ne!(crossovers.direction, Direction::Neither);
//! # Ok(())
//! # }
//! ```

pub mod crossover;
pub mod data;
mod error;
pub mod grokking;
pub mod incremental;
pub mod metric;
pub mod mlp;
pub mod model;
pub mod optim;
pub mod perturb;
pub mod report;
pub mod sweep;
pub mod train;

pub use ndarray;
pub use ndarray_rand;

pub use crate::crossover::{
    find_crossing, AccuracyRule, Crossing, Crossovers, Direction, Threshold, Thresholds,
};
pub use data::Dataset;
pub use error::{Error, Result};
pub use metric::{Evaluation, Metric};
pub use mlp::{Dense, Mlp};
pub use model::{log_softmax, Model};
pub use optim::Optimizer;
pub use perturb::{
    GaussianWeightNoise, GlobalMagnitudePruning, Interpolation, LayerwiseMagnitudePruning,
    Perturbation, Quantization, RandomNeuronPruning, RandomPruning, StructuredPruning,
};
pub use sweep::{Recorder, Sweep, SweepResult, SweepRow};
pub use train::{train, TrainConfig};

/// Compiles and runs the README's Rust example as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
