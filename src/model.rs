//! The [`Model`] trait and the numerically stable log-softmax that implementations share.

use ndarray::{Array2, ArrayView2, Axis};

use crate::error::{Error, Result};

/// A classifier that maps a batch of inputs to log-probabilities over its classes.
///
/// Everything downstream (metrics, sweeps, crossover detection) uses a model only through this
/// trait, so a user's own network, a checkpoint loaded from elsewhere or a hand-written table of
/// logits all plug in the same way.
///
/// `log_probs` must return an array of shape `(samples, n_classes())` whose rows are normalised
/// log-probabilities. Implementations that start from logits should call [`log_softmax`], which
/// works in `f64` so that log-likelihood ratios of nearly identical models do not round to zero.
pub trait Model {
    /// The batch type the model reads, for example `Array2<f32>` for a dense network.
    type Input: ?Sized;

    /// Computes log-probabilities of shape `(samples, classes)` for a batch of inputs.
    ///
    /// # Errors
    /// Implementations return an error when the batch does not fit the model (for example a wrong
    /// feature count) or when the logits are not finite.
    fn log_probs(&self, inputs: &Self::Input) -> Result<Array2<f64>>;

    /// Returns the number of classes, the column count of [`Model::log_probs`].
    ///
    /// Sweeps use it to check labels before any evaluation runs.
    fn n_classes(&self) -> usize;

    /// Predicts the most probable class of every input (the first one on ties).
    ///
    /// # Errors
    /// Returns the errors of [`Model::log_probs`].
    fn predict(&self, inputs: &Self::Input) -> Result<Vec<usize>> {
        Ok(argmax_rows(self.log_probs(inputs)?.view()))
    }

    /// Returns the fraction of inputs whose predicted class equals the label.
    ///
    /// # Errors
    /// Returns [`Error::Empty`] for an empty batch, [`Error::ShapeMismatch`] when the label
    /// count differs from the batch size, and the errors of [`Model::log_probs`].
    fn accuracy(&self, inputs: &Self::Input, labels: &[usize]) -> Result<f64> {
        let predictions = self.predict(inputs)?;
        if predictions.is_empty() {
            return Err(Error::Empty("input batch"));
        }
        if predictions.len() != labels.len() {
            return Err(Error::shape(
                "labels",
                &[predictions.len()],
                &[labels.len()],
            ));
        }
        let correct = predictions
            .iter()
            .zip(labels)
            .filter(|(predicted, label)| predicted == label)
            .count();
        Ok(correct as f64 / labels.len() as f64)
    }
}

/// Computes row-wise log-softmax in `f64` from `f32` logits.
///
/// For a row `z` with maximum `m` reached first at index `j`,
/// `log p_i = (z_i - m) - ln_1p(sum_{k != j} exp(z_k - m))`.
/// Shifting by the maximum keeps every exponent at or below zero, and `ln_1p` keeps the
/// log-probability of a confident prediction exact: for logits `[17, 0]` it returns
/// `-4.1399e-8` for class 0, where `f32` arithmetic returns 0.
///
/// # Errors
/// Returns [`Error::NonFinite`] when a logit is NaN or infinite, naming the flat index, and
/// [`Error::Empty`] when a row has no columns.
pub fn log_softmax(logits: ArrayView2<f32>) -> Result<Array2<f64>> {
    let classes = logits.ncols();
    if classes == 0 {
        return Err(Error::Empty("logit row"));
    }
    let mut out = Array2::<f64>::zeros(logits.raw_dim());
    let mut row_buffer = Vec::with_capacity(classes);
    for (row_index, (row, mut out_row)) in logits
        .axis_iter(Axis(0))
        .zip(out.axis_iter_mut(Axis(0)))
        .enumerate()
    {
        row_buffer.clear();
        row_buffer.extend(row.iter().copied());
        let out_row = out_row
            .as_slice_mut()
            .expect("a row of a fresh standard-layout array is contiguous");
        log_softmax_row(&row_buffer, out_row).map_err(|(column, value)| Error::NonFinite {
            what: "logit",
            value: f64::from(value),
            index: row_index * classes + column,
        })?;
    }
    Ok(out)
}

/// Writes the log-softmax of one non-empty row of logits into `out`, as [`log_softmax`] does.
///
/// Returns the column and value of the first non-finite logit instead, leaving `out` unspecified.
/// Every implementation of the sweep calls this one function, so their log-probabilities agree
/// bit for bit on equal logits.
#[inline]
pub(crate) fn log_softmax_row(
    row: &[f32],
    out: &mut [f64],
) -> std::result::Result<(), (usize, f32)> {
    let mut max = f64::NEG_INFINITY;
    let mut max_index = 0;
    for (column, &value) in row.iter().enumerate() {
        if !value.is_finite() {
            return Err((column, value));
        }
        if f64::from(value) > max {
            max = f64::from(value);
            max_index = column;
        }
    }
    let mut rest = 0.0;
    for (column, &value) in row.iter().enumerate() {
        if column != max_index {
            rest += (f64::from(value) - max).exp();
        }
    }
    let log_normaliser = rest.ln_1p();
    for (target, &value) in out.iter_mut().zip(row) {
        *target = (f64::from(value) - max) - log_normaliser;
    }
    Ok(())
}

/// Returns the index of the largest entry of every row, the first one on ties.
///
/// NaN entries never win. An empty row yields 0.
pub fn argmax_rows(values: ArrayView2<f64>) -> Vec<usize> {
    values
        .axis_iter(Axis(0))
        .map(|row| {
            let mut best = 0;
            let mut best_value = f64::NEG_INFINITY;
            for (index, &value) in row.iter().enumerate() {
                if value > best_value {
                    best_value = value;
                    best = index;
                }
            }
            best
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;
    use ndarray::array;

    #[test]
    fn log_softmax_rows_normalise() {
        let logits = array![[1.0f32, 2.0, 3.0], [-50.0, 0.0, 50.0]];
        let log_probs = log_softmax(logits.view()).unwrap();
        for row in log_probs.rows() {
            let total: f64 = row.iter().map(|value| value.exp()).sum();
            assert_relative_eq!(total, 1.0, epsilon = 1e-12);
        }
    }

    #[test]
    fn log_softmax_matches_direct_formula() {
        let logits = array![[0.5f32, -1.25, 2.0]];
        let log_probs = log_softmax(logits.view()).unwrap();
        let normaliser: f64 = logits.iter().map(|&z| f64::from(z).exp()).sum::<f64>().ln();
        for (column, &z) in logits.iter().enumerate() {
            assert_relative_eq!(
                log_probs[[0, column]],
                f64::from(z) - normaliser,
                epsilon = 1e-12
            );
        }
    }

    #[test]
    fn log_softmax_keeps_confident_probabilities() {
        let logits = array![[17.0f32, 0.0]];
        let log_probs = log_softmax(logits.view()).unwrap();
        // -ln(1 + e^-17), computed with mpmath to 6 digits.
        assert_relative_eq!(log_probs[[0, 0]], -4.139937e-8, max_relative = 1e-6);
        assert_relative_eq!(log_probs[[0, 1]], -17.0 - 4.139937e-8, max_relative = 1e-12);
    }

    #[test]
    fn log_softmax_rejects_nan() {
        let logits = array![[0.0f32, 1.0], [f32::NAN, 0.0]];
        let error = log_softmax(logits.view()).unwrap_err();
        assert!(matches!(error, Error::NonFinite { index: 2, .. }));
    }

    #[test]
    fn log_softmax_rejects_empty_rows() {
        let logits = Array2::<f32>::zeros((3, 0));
        assert!(matches!(log_softmax(logits.view()), Err(Error::Empty(_))));
    }

    #[test]
    fn argmax_takes_first_on_ties() {
        let values = array![[1.0, 3.0, 3.0], [0.0, -1.0, -2.0]];
        assert_eq!(argmax_rows(values.view()), vec![1, 0]);
    }
}
