//! Grokking on modular arithmetic: the training run as a perturbation axis.
//!
//! A small network trained on part of the table `(a + b) mod p` first memorizes its training
//! pairs and only much later generalizes to the rest. Taking the checkpoint at memorization as
//! the reference and the epoch as the level, the test-set output distribution moves away from the
//! reference (the per-sample LLR and KL cross their thresholds) long before test accuracy
//! changes: an information-first crossover, the mirror image of pruning.
//!
//! - [`data`]: the modular-arithmetic pairs and a seeded train/test split.
//! - [`model`]: the embedding-sum network, an implementation of [`crate::model::Model`].
//! - [`train`]: full-batch AdamW training that records test metrics every epoch through
//!   [`crate::sweep::Recorder`].
//! - [`analysis`]: memorization and grokking epochs, signed LLR and KL crossings, and leads.
//! - [`report`]: the per-epoch CSV, the JSON summary and the SVG figure.

pub mod analysis;
pub mod data;
pub mod model;
pub mod report;
pub mod train;

pub use analysis::{analyze, grokking_thresholds, GrokkingAnalysis, GrokkingCrossovers, Leads};
pub use data::{ModularDataset, ModularSplit, Operation};
pub use model::EmbeddingMlp;
pub use report::{
    epochs_csv, format_milestones, grokking_summary, write_grokking_reports, GrokkingFiles,
};
pub use train::{train_grokking, EpochStats, GrokkingConfig, GrokkingRun, Reference};
