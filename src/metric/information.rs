//! Information metrics: log-likelihood ratios and KL divergence, accumulated in `f64`.

use ndarray::{Array1, Axis};

use super::{Evaluation, Metric};
use crate::error::{Error, Result};

/// Computes the per-sample log-likelihood ratio of the true label,
/// `LLR_i = log p_perturbed(y_i | x_i) - log p_reference(y_i | x_i)`.
///
/// Negative values mean the perturbed model gives the true label less probability than the
/// reference does. A `-inf` perturbed log-probability gives `-inf`; a `-inf` in both gives NaN,
/// because the ratio of two zero probabilities is undefined.
pub fn llr_per_sample(evaluation: &Evaluation) -> Array1<f64> {
    let reference = evaluation.reference();
    let perturbed = evaluation.perturbed();
    evaluation
        .labels()
        .iter()
        .enumerate()
        .map(|(row, &label)| perturbed[[row, label]] - reference[[row, label]])
        .collect()
}

fn total_llr(evaluation: &Evaluation) -> f64 {
    let reference = evaluation.reference();
    let perturbed = evaluation.perturbed();
    evaluation
        .labels()
        .iter()
        .enumerate()
        .map(|(row, &label)| perturbed[[row, label]] - reference[[row, label]])
        .sum()
}

/// Computes the mean over samples of `KL(reference || perturbed)` in nats,
/// `(1/n) sum_i sum_c p_ref(c|x_i) (log p_ref(c|x_i) - log p_pert(c|x_i))`.
///
/// A class whose reference probability is 0 in `f64` (log-probability `-inf`, or below about
/// `-745`) contributes 0, the convention `0 ln 0 = 0`. A class the reference finds possible but
/// the perturbed model gives `-inf` makes the divergence infinite. Each sample's divergence is
/// clamped at 0, because rounding can turn a true value of about 0 into something like `-1e-17`.
pub fn mean_kl(evaluation: &Evaluation) -> f64 {
    let probabilities = evaluation.reference_probabilities();
    let total: f64 = probabilities
        .axis_iter(Axis(0))
        .zip(evaluation.reference().axis_iter(Axis(0)))
        .zip(evaluation.perturbed().axis_iter(Axis(0)))
        .map(|((probability, reference), perturbed)| {
            let divergence: f64 = probability
                .iter()
                .zip(reference.iter().zip(perturbed.iter()))
                .filter(|(&p, _)| p > 0.0)
                .map(|(&p, (&log_ref, &log_pert))| p * (log_ref - log_pert))
                .sum();
            divergence.max(0.0)
        })
        .sum();
    total / evaluation.n_samples() as f64
}

/// Mean per-sample LLR in nats, `(1/n) sum_i LLR_i`: how much evidence one sample gives, on
/// average, that it was scored by the perturbed model and not the reference.
#[derive(Debug, Clone, Copy, Default)]
pub struct MeanLlr;

impl Metric for MeanLlr {
    fn compute(&self, evaluation: &Evaluation) -> Result<f64> {
        Ok(total_llr(evaluation) / evaluation.n_samples() as f64)
    }

    fn name(&self) -> String {
        "mean_llr".into()
    }
}

/// Total LLR over the evaluation set in nats, `sum_i LLR_i`: the evidence of the whole set.
#[derive(Debug, Clone, Copy, Default)]
pub struct TotalLlr;

impl Metric for TotalLlr {
    fn compute(&self, evaluation: &Evaluation) -> Result<f64> {
        Ok(total_llr(evaluation))
    }

    fn name(&self) -> String {
        "total_llr".into()
    }
}

/// Mean `KL(reference || perturbed)` in nats; see [`mean_kl`].
#[derive(Debug, Clone, Copy, Default)]
pub struct MeanKl;

impl Metric for MeanKl {
    fn compute(&self, evaluation: &Evaluation) -> Result<f64> {
        Ok(mean_kl(evaluation))
    }

    fn name(&self) -> String {
        "mean_kl".into()
    }
}

/// Number of samples needed, on average, to gather `evidence` nats: `evidence / |mean LLR|`.
///
/// Infinite when the mean LLR is exactly 0.
#[derive(Debug, Clone, Copy)]
pub struct SamplesToDetect {
    evidence: f64,
}

impl SamplesToDetect {
    /// Creates the metric for an evidence level in nats.
    ///
    /// # Errors
    /// Returns [`Error::InvalidParameter`] unless `evidence` is finite and positive.
    pub fn new(evidence: f64) -> Result<Self> {
        if !(evidence.is_finite() && evidence > 0.0) {
            return Err(Error::invalid_parameter(
                "evidence",
                evidence,
                "a finite number of nats above 0, for example 3.0",
            ));
        }
        Ok(SamplesToDetect { evidence })
    }
}

impl Default for SamplesToDetect {
    /// Three nats, a likelihood ratio of about 20:1.
    fn default() -> Self {
        SamplesToDetect { evidence: 3.0 }
    }
}

impl Metric for SamplesToDetect {
    fn compute(&self, evaluation: &Evaluation) -> Result<f64> {
        let mean = total_llr(evaluation) / evaluation.n_samples() as f64;
        Ok(if mean == 0.0 {
            f64::INFINITY
        } else {
            self.evidence / mean.abs()
        })
    }

    fn name(&self) -> String {
        "samples_to_detect".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::log_softmax;
    use approx::assert_relative_eq;
    use ndarray::{array, Array2};
    use proptest::prelude::*;

    fn evaluate<M: Metric>(
        metric: M,
        reference: &Array2<f64>,
        perturbed: &Array2<f64>,
        labels: &[usize],
    ) -> f64 {
        let evaluation = Evaluation::new(reference.view(), perturbed.view(), labels).unwrap();
        metric.compute(&evaluation).unwrap()
    }

    #[test]
    fn llr_of_confident_logits_survives_f64() {
        // -ln_1p(e^-16) + ln_1p(e^-17), evaluated with mpmath at 30 digits: -7.11357e-8.
        let reference = log_softmax(array![[17.0f32, 0.0]].view()).unwrap();
        let perturbed = log_softmax(array![[16.0f32, 0.0]].view()).unwrap();
        let llr = evaluate(MeanLlr, &reference, &perturbed, &[0]);
        assert_relative_eq!(llr, -7.11357e-8, max_relative = 1e-5);
    }

    #[test]
    fn kl_matches_hand_computation() {
        // p = (0.5, 0.5), q = (0.25, 0.75): KL = 0.5 ln 2 + 0.5 ln(2/3).
        let reference = array![[0.5f64.ln(), 0.5f64.ln()]];
        let perturbed = array![[0.25f64.ln(), 0.75f64.ln()]];
        let expected = 0.5 * 2f64.ln() + 0.5 * (2.0f64 / 3.0).ln();
        assert_relative_eq!(
            evaluate(MeanKl, &reference, &perturbed, &[0]),
            expected,
            epsilon = 1e-15
        );
    }

    #[test]
    fn kl_skips_impossible_reference_classes() {
        let reference = array![[0.0, f64::NEG_INFINITY]];
        let perturbed = array![[0.5f64.ln(), 0.5f64.ln()]];
        assert_relative_eq!(
            evaluate(MeanKl, &reference, &perturbed, &[0]),
            2f64.ln(),
            epsilon = 1e-15
        );
    }

    #[test]
    fn kl_is_infinite_when_perturbed_rules_out_a_class() {
        let reference = array![[0.5f64.ln(), 0.5f64.ln()]];
        let perturbed = array![[0.0, f64::NEG_INFINITY]];
        assert_eq!(
            evaluate(MeanKl, &reference, &perturbed, &[0]),
            f64::INFINITY
        );
    }

    #[test]
    fn samples_to_detect_is_infinite_without_evidence() {
        let log_probs = array![[0.0, f64::NEG_INFINITY]];
        let value = evaluate(SamplesToDetect::default(), &log_probs, &log_probs, &[0]);
        assert_eq!(value, f64::INFINITY);
    }

    #[test]
    fn samples_to_detect_divides_evidence() {
        let reference = array![[0.5f64.ln(), 0.5f64.ln()]];
        let perturbed = array![[0.25f64.ln(), 0.75f64.ln()]];
        let value = evaluate(SamplesToDetect::default(), &reference, &perturbed, &[0]);
        assert_relative_eq!(value, 3.0 / 2f64.ln(), epsilon = 1e-12);
    }

    #[test]
    fn samples_to_detect_rejects_bad_evidence() {
        assert!(SamplesToDetect::new(0.0).is_err());
        assert!(SamplesToDetect::new(f64::NAN).is_err());
        assert!(SamplesToDetect::new(2.0).is_ok());
    }

    fn logits_strategy() -> impl Strategy<Value = (Array2<f32>, Array2<f32>, Vec<usize>)> {
        (1usize..20, 2usize..6).prop_flat_map(|(samples, classes)| {
            let values = proptest::collection::vec(-20.0f32..20.0, samples * classes);
            let other = proptest::collection::vec(-20.0f32..20.0, samples * classes);
            let labels = proptest::collection::vec(0..classes, samples);
            (values, other, labels).prop_map(move |(a, b, labels)| {
                (
                    Array2::from_shape_vec((samples, classes), a).unwrap(),
                    Array2::from_shape_vec((samples, classes), b).unwrap(),
                    labels,
                )
            })
        })
    }

    proptest! {
        #[test]
        fn llr_and_kl_vanish_for_identical_models((logits, _, labels) in logits_strategy()) {
            let log_probs = log_softmax(logits.view()).unwrap();
            prop_assert_eq!(evaluate(MeanLlr, &log_probs, &log_probs, &labels), 0.0);
            prop_assert_eq!(evaluate(TotalLlr, &log_probs, &log_probs, &labels), 0.0);
            prop_assert_eq!(evaluate(MeanKl, &log_probs, &log_probs, &labels), 0.0);
        }

        #[test]
        fn total_llr_is_mean_times_count((a, b, labels) in logits_strategy()) {
            let reference = log_softmax(a.view()).unwrap();
            let perturbed = log_softmax(b.view()).unwrap();
            let mean = evaluate(MeanLlr, &reference, &perturbed, &labels);
            let total = evaluate(TotalLlr, &reference, &perturbed, &labels);
            prop_assert!((total - mean * labels.len() as f64).abs() <= 1e-9 * (1.0 + total.abs()));
        }

        #[test]
        fn kl_is_never_negative((a, b, labels) in logits_strategy()) {
            let reference = log_softmax(a.view()).unwrap();
            let perturbed = log_softmax(b.view()).unwrap();
            prop_assert!(evaluate(MeanKl, &reference, &perturbed, &labels) >= 0.0);
        }

        #[test]
        fn llr_is_antisymmetric((a, b, labels) in logits_strategy()) {
            let first = log_softmax(a.view()).unwrap();
            let second = log_softmax(b.view()).unwrap();
            let forward = evaluate(TotalLlr, &first, &second, &labels);
            let backward = evaluate(TotalLlr, &second, &first, &labels);
            prop_assert!((forward + backward).abs() <= 1e-9 * (1.0 + forward.abs()));
        }
    }
}
