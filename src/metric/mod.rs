//! Metrics computed from one evaluation: reference and perturbed log-probabilities on a labelled set.
//!
//! Behavior metrics ([`Accuracy`], [`FlipRate`]) look only at the predicted classes. Information
//! metrics ([`MeanLlr`], [`TotalLlr`], [`MeanKl`], [`SamplesToDetect`]) look at the whole output
//! distribution. All of them read an [`Evaluation`], which checks shapes, labels and NaN once, so
//! each metric is a total function of valid input.

mod behavior;
mod information;

pub use behavior::{accuracy, flip_rate, Accuracy, FlipRate};
pub use information::{llr_per_sample, mean_kl, MeanKl, MeanLlr, SamplesToDetect, TotalLlr};

use std::borrow::Cow;

use ndarray::{Array2, ArrayView2, CowArray, Ix2};

use crate::error::{Error, Result};
use crate::model::argmax_rows;

/// Reference and perturbed log-probabilities of the same labelled samples, validated.
///
/// Both arrays have shape `(samples, classes)`. `-inf` log-probabilities are accepted (a model may
/// assign probability 0) and propagate as infinite LLR or KL; NaN and `+inf` are rejected.
///
/// NOTE: rows are assumed to be normalised (`sum_c exp(log p) = 1`) and are not checked, because
/// the check would cost one `exp` per entry at every level. [`crate::log_softmax`] guarantees it.
#[derive(Debug, Clone, Copy)]
pub struct Evaluation<'a> {
    reference: ArrayView2<'a, f64>,
    perturbed: ArrayView2<'a, f64>,
    labels: &'a [usize],
    cache: Option<&'a ReferenceCache>,
    perturbed_predictions: Option<&'a [usize]>,
}

/// Quantities of the reference that stay fixed along a sweep, computed once by a
/// [`Recorder`](crate::Recorder) instead of at every level.
#[derive(Debug, Clone)]
pub(crate) struct ReferenceCache {
    probabilities: Array2<f64>,
    predictions: Vec<usize>,
}

impl ReferenceCache {
    pub(crate) fn new(reference: ArrayView2<f64>) -> Self {
        ReferenceCache {
            probabilities: reference.mapv(f64::exp),
            predictions: argmax_rows(reference),
        }
    }
}

impl<'a> Evaluation<'a> {
    /// Checks and wraps one evaluation.
    ///
    /// # Errors
    /// - [`Error::Empty`] when there are no samples or no classes;
    /// - [`Error::ShapeMismatch`] when the two arrays differ in shape or the label count differs
    ///   from the sample count;
    /// - [`Error::LabelOutOfRange`] when a label is not below the class count;
    /// - [`Error::NonFinite`] when an entry is NaN or `+inf`.
    pub fn new(
        reference: ArrayView2<'a, f64>,
        perturbed: ArrayView2<'a, f64>,
        labels: &'a [usize],
    ) -> Result<Self> {
        if reference.nrows() == 0 {
            return Err(Error::Empty("evaluation set"));
        }
        if reference.ncols() == 0 {
            return Err(Error::Empty("class axis of the log-probabilities"));
        }
        if reference.shape() != perturbed.shape() {
            return Err(Error::shape(
                "perturbed log-probabilities",
                reference.shape(),
                perturbed.shape(),
            ));
        }
        if labels.len() != reference.nrows() {
            return Err(Error::shape(
                "labels (one per row of the log-probabilities)",
                &[reference.nrows()],
                &[labels.len()],
            ));
        }
        check_labels(labels, reference.ncols())?;
        check_log_probabilities("reference log-probability", reference)?;
        Self::with_checked_reference(reference, perturbed, labels)
    }

    /// Checks and wraps one evaluation whose reference and labels the caller has already
    /// checked with [`Evaluation::new`], as a [`Recorder`](crate::Recorder) does once per sweep.
    ///
    /// # Errors
    /// Returns [`Error::ShapeMismatch`] when `perturbed` differs from the reference in shape
    /// and [`Error::NonFinite`] when an entry of `perturbed` is NaN or `+inf`.
    pub(crate) fn with_checked_reference(
        reference: ArrayView2<'a, f64>,
        perturbed: ArrayView2<'a, f64>,
        labels: &'a [usize],
    ) -> Result<Self> {
        if reference.shape() != perturbed.shape() {
            return Err(Error::shape(
                "perturbed log-probabilities",
                reference.shape(),
                perturbed.shape(),
            ));
        }
        check_log_probabilities("perturbed log-probability", perturbed)?;
        Ok(Evaluation {
            reference,
            perturbed,
            labels,
            cache: None,
            perturbed_predictions: None,
        })
    }

    /// Attaches the perturbed model's predicted classes, computed once for all metrics.
    ///
    /// The caller guarantees that they are `argmax_rows(perturbed)`; the length is checked as
    /// a guard.
    pub(crate) fn with_perturbed_predictions(mut self, predictions: &'a [usize]) -> Result<Self> {
        if predictions.len() != self.perturbed.nrows() {
            return Err(Error::shape(
                "cached perturbed predictions",
                &[self.perturbed.nrows()],
                &[predictions.len()],
            ));
        }
        self.perturbed_predictions = Some(predictions);
        Ok(self)
    }

    /// Attaches quantities precomputed from this evaluation's reference.
    ///
    /// The caller guarantees that `cache` was built from the same reference; the shape is
    /// checked as a guard.
    pub(crate) fn with_cache(mut self, cache: &'a ReferenceCache) -> Result<Self> {
        if cache.probabilities.shape() != self.reference.shape() {
            return Err(Error::shape(
                "cached reference probabilities",
                self.reference.shape(),
                cache.probabilities.shape(),
            ));
        }
        self.cache = Some(cache);
        Ok(self)
    }

    /// Returns the reference probabilities `exp(log p_ref)`.
    pub fn reference_probabilities(&self) -> CowArray<'_, f64, Ix2> {
        match self.cache {
            Some(cache) => CowArray::from(cache.probabilities.view()),
            None => CowArray::from(self.reference.mapv(f64::exp)),
        }
    }

    /// Returns the reference model's predicted classes (argmax, first on ties).
    pub fn reference_predictions(&self) -> Cow<'_, [usize]> {
        match self.cache {
            Some(cache) => Cow::Borrowed(&cache.predictions),
            None => Cow::Owned(argmax_rows(self.reference)),
        }
    }

    /// Returns the perturbed model's predicted classes (argmax, first on ties).
    pub fn perturbed_predictions(&self) -> Cow<'_, [usize]> {
        match self.perturbed_predictions {
            Some(predictions) => Cow::Borrowed(predictions),
            None => Cow::Owned(argmax_rows(self.perturbed)),
        }
    }

    /// Returns the reference model's log-probabilities.
    pub fn reference(&self) -> ArrayView2<'a, f64> {
        self.reference
    }

    /// Returns the perturbed model's log-probabilities.
    pub fn perturbed(&self) -> ArrayView2<'a, f64> {
        self.perturbed
    }

    /// Returns the true labels.
    pub fn labels(&self) -> &'a [usize] {
        self.labels
    }

    /// Returns the number of samples.
    pub fn n_samples(&self) -> usize {
        self.labels.len()
    }
}

/// Checks that every label is a valid class index.
///
/// # Errors
/// Returns [`Error::LabelOutOfRange`] naming the first offending label and its position.
pub fn check_labels(labels: &[usize], classes: usize) -> Result<()> {
    match labels.iter().position(|&label| label >= classes) {
        Some(index) => Err(Error::LabelOutOfRange {
            label: labels[index],
            index,
            classes,
        }),
        None => Ok(()),
    }
}

/// Rejects NaN and `+inf`, which no log-probability can be; `-inf` (probability 0) passes.
fn check_log_probabilities(what: &'static str, values: ArrayView2<f64>) -> Result<()> {
    match values
        .iter()
        .position(|value| value.is_nan() || *value == f64::INFINITY)
    {
        Some(index) => Err(Error::NonFinite {
            what,
            value: values.iter().nth(index).copied().unwrap_or(f64::NAN),
            index,
        }),
        None => Ok(()),
    }
}

/// A number computed from one [`Evaluation`].
///
/// Implement `compute` to add a metric of your own to a sweep; `name` becomes its column name in
/// tables, CSV and JSON reports.
pub trait Metric {
    /// Computes the metric.
    ///
    /// # Errors
    /// Implementations return an error when the metric is undefined for the evaluation.
    fn compute(&self, evaluation: &Evaluation) -> Result<f64>;

    /// Returns the column name used in reports. Defaults to the type name.
    fn name(&self) -> String {
        let full = std::any::type_name::<Self>();
        full.rsplit("::").next().unwrap_or(full).to_string()
    }
}

/// Returns the metrics a [`Sweep`](crate::Sweep) records by default, in report order:
/// `accuracy`, `mean_llr`, `total_llr`, `mean_kl`, `flip_rate` and `samples_to_detect` (at 3 nats).
pub fn standard_metrics() -> Vec<Box<dyn Metric + Send + Sync>> {
    vec![
        Box::new(Accuracy),
        Box::new(MeanLlr),
        Box::new(TotalLlr),
        Box::new(MeanKl),
        Box::new(FlipRate),
        Box::new(SamplesToDetect::default()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn evaluation_rejects_shape_mismatch() {
        let reference = array![[0.0, -1.0]];
        let perturbed = array![[0.0, -1.0, -2.0]];
        let error = Evaluation::new(reference.view(), perturbed.view(), &[0]).unwrap_err();
        assert!(matches!(error, Error::ShapeMismatch { .. }));
    }

    #[test]
    fn evaluation_rejects_label_out_of_range() {
        let log_probs = array![[0.0, -1.0], [-1.0, 0.0]];
        let error = Evaluation::new(log_probs.view(), log_probs.view(), &[1, 2]).unwrap_err();
        assert!(matches!(
            error,
            Error::LabelOutOfRange {
                label: 2,
                index: 1,
                classes: 2
            }
        ));
    }

    #[test]
    fn evaluation_rejects_empty_set() {
        let log_probs = ndarray::Array2::<f64>::zeros((0, 3));
        let error = Evaluation::new(log_probs.view(), log_probs.view(), &[]).unwrap_err();
        assert!(matches!(error, Error::Empty(_)));
    }

    #[test]
    fn evaluation_rejects_nan() {
        let reference = array![[0.0, -1.0]];
        let perturbed = array![[f64::NAN, -1.0]];
        let error = Evaluation::new(reference.view(), perturbed.view(), &[0]).unwrap_err();
        assert!(matches!(error, Error::NonFinite { index: 0, .. }));
    }

    #[test]
    fn evaluation_rejects_positive_infinity() {
        let reference = array![[0.0, -1.0]];
        let perturbed = array![[-1.0, f64::INFINITY]];
        let error = Evaluation::new(reference.view(), perturbed.view(), &[0]).unwrap_err();
        assert!(matches!(error, Error::NonFinite { index: 1, .. }));
    }

    #[test]
    fn evaluation_rejects_label_count_mismatch() {
        let log_probs = array![[0.0, -1.0], [-1.0, 0.0]];
        let error = Evaluation::new(log_probs.view(), log_probs.view(), &[0]).unwrap_err();
        assert!(matches!(error, Error::ShapeMismatch { .. }));
    }

    #[test]
    fn cached_reference_gives_same_metrics() {
        let reference = array![
            [-0.1, -2.4, -5.0],
            [-3.0, -0.06, -4.0],
            [f64::NEG_INFINITY, 0.0, -800.0]
        ];
        let perturbed = array![[-0.7, -0.8, -3.0], [-0.02, -4.0, -5.0], [-1.0, -0.5, -2.0]];
        let labels = [0, 1, 2];
        let plain = Evaluation::new(reference.view(), perturbed.view(), &labels).unwrap();
        let cache = ReferenceCache::new(reference.view());
        let cached = plain.with_cache(&cache).unwrap();
        for metric in standard_metrics() {
            let expected = metric.compute(&plain).unwrap();
            assert_eq!(
                metric.compute(&cached).unwrap(),
                expected,
                "{}",
                metric.name()
            );
        }
    }

    #[test]
    fn cache_of_other_shape_is_rejected() {
        let reference = array![[0.0, f64::NEG_INFINITY]];
        let cache = ReferenceCache::new(array![[0.0, f64::NEG_INFINITY, f64::NEG_INFINITY]].view());
        let evaluation = Evaluation::new(reference.view(), reference.view(), &[0]).unwrap();
        assert!(matches!(
            evaluation.with_cache(&cache),
            Err(Error::ShapeMismatch { .. })
        ));
    }

    #[test]
    fn standard_metric_names_are_report_columns() {
        let names: Vec<String> = standard_metrics()
            .iter()
            .map(|metric| metric.name())
            .collect();
        assert_eq!(
            names,
            [
                "accuracy",
                "mean_llr",
                "total_llr",
                "mean_kl",
                "flip_rate",
                "samples_to_detect"
            ]
        );
    }
}
