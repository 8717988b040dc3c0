//! The crate's error type.

use std::path::PathBuf;

/// Errors returned by every fallible function of the crate.
///
/// Each variant carries the offending value (a path, a shape, a level) so that the message alone
/// shows what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A file exists but its content does not have the expected format.
    #[error("invalid file {path}: {reason}")]
    InvalidFile { path: PathBuf, reason: String },

    /// A data set could not be found or fetched.
    #[error("{0}")]
    DataUnavailable(String),

    /// Two arrays that must agree in shape do not.
    #[error("shape mismatch in {context}: expected {expected:?}, got {actual:?}")]
    ShapeMismatch {
        context: &'static str,
        expected: Vec<usize>,
        actual: Vec<usize>,
    },

    /// A label is not a valid class index.
    #[error("label {label} at sample {index} is out of range: labels must be below the class count {classes}")]
    LabelOutOfRange {
        label: usize,
        index: usize,
        classes: usize,
    },

    /// An input that needs at least one element has none, such as a set without samples or a
    /// sweep without levels.
    #[error("{0} is empty")]
    Empty(&'static str),

    /// Training produced a non-finite loss in `epoch`, counted from 1.
    #[error(
        "training diverged in epoch {epoch}: the mean loss is {loss}; lower the learning rate"
    )]
    Diverged { epoch: usize, loss: f64 },

    /// A value that must be finite is NaN or infinite.
    #[error("{what} is not finite ({value}) at index {index}")]
    NonFinite {
        what: &'static str,
        value: f64,
        index: usize,
    },

    /// A setting or argument is outside its valid range.
    #[error("invalid {name} = {value}: {expected}")]
    InvalidParameter {
        name: &'static str,
        value: String,
        expected: String,
    },

    /// A threshold was never crossed where the caller required a crossing.
    #[error("{metric} never crossed its threshold {threshold} (closest value: {closest}); extend the sweep or lower the threshold")]
    NeverCrossed {
        metric: String,
        threshold: f64,
        closest: f64,
    },

    /// A metric or column name is not known.
    #[error("unknown metric `{name}`; available: {available}")]
    UnknownMetric { name: String, available: String },

    /// Saving or loading safetensors failed.
    #[error("safetensors error on {path}: {reason}")]
    Safetensors { path: PathBuf, reason: String },

    /// Serializing a report failed.
    #[error("could not serialize {what}: {reason}")]
    Serialize { what: String, reason: String },

    /// Drawing a plot failed.
    #[error("could not draw plot {path}: {reason}")]
    Plot { path: PathBuf, reason: String },
}

/// Result alias with the crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid_file(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::InvalidFile {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid_parameter(
        name: &'static str,
        value: impl ToString,
        expected: impl Into<String>,
    ) -> Self {
        Error::InvalidParameter {
            name,
            value: value.to_string(),
            expected: expected.into(),
        }
    }

    pub(crate) fn shape(context: &'static str, expected: &[usize], actual: &[usize]) -> Self {
        Error::ShapeMismatch {
            context,
            expected: expected.to_vec(),
            actual: actual.to_vec(),
        }
    }
}
