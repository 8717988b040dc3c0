//! placeholder
pub mod crossover;
pub mod data;
mod error;
pub mod incremental;
pub mod metric;
pub mod mlp;
pub mod model;
pub mod optim;
pub mod perturb;
pub mod report;
pub mod sweep;
pub mod train;

pub use error::{Error, Result};
