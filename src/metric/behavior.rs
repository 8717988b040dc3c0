//! Behavior metrics: what the perturbed model predicts, ignoring how confident it is.

use super::{Evaluation, Metric};
use crate::error::Result;

/// Returns the fraction of samples whose perturbed prediction (argmax, first on ties) equals the
/// label.
pub fn accuracy(evaluation: &Evaluation) -> f64 {
    let predictions = evaluation.perturbed_predictions();
    let correct = predictions
        .iter()
        .zip(evaluation.labels())
        .filter(|(predicted, label)| predicted == label)
        .count();
    correct as f64 / evaluation.n_samples() as f64
}

/// Returns the fraction of samples whose perturbed prediction differs from the reference's.
pub fn flip_rate(evaluation: &Evaluation) -> f64 {
    let reference = evaluation.reference_predictions();
    let perturbed = evaluation.perturbed_predictions();
    let flips = reference
        .iter()
        .zip(perturbed.iter())
        .filter(|(before, after)| before != after)
        .count();
    flips as f64 / evaluation.n_samples() as f64
}

/// Accuracy of the perturbed model, a fraction in `[0, 1]`; see [`accuracy`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Accuracy;

impl Metric for Accuracy {
    fn compute(&self, evaluation: &Evaluation) -> Result<f64> {
        Ok(accuracy(evaluation))
    }

    fn name(&self) -> String {
        "accuracy".into()
    }
}

/// Share of predictions that changed; see [`flip_rate`].
#[derive(Debug, Clone, Copy, Default)]
pub struct FlipRate;

impl Metric for FlipRate {
    fn compute(&self, evaluation: &Evaluation) -> Result<f64> {
        Ok(flip_rate(evaluation))
    }

    fn name(&self) -> String {
        "flip_rate".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn accuracy_and_flips_count_argmax() {
        let reference = array![[0.0, -5.0], [-5.0, 0.0], [0.0, -5.0], [-5.0, 0.0]];
        let perturbed = array![[0.0, -5.0], [0.0, -5.0], [-5.0, 0.0], [-5.0, 0.0]];
        let labels = [0, 1, 1, 0];
        let evaluation = Evaluation::new(reference.view(), perturbed.view(), &labels).unwrap();
        assert_eq!(accuracy(&evaluation), 0.5);
        assert_eq!(flip_rate(&evaluation), 0.5);
    }

    #[test]
    fn identical_models_flip_nothing() {
        let log_probs = array![[0.0, -5.0], [-5.0, 0.0]];
        let evaluation = Evaluation::new(log_probs.view(), log_probs.view(), &[0, 0]).unwrap();
        assert_eq!(flip_rate(&evaluation), 0.0);
        assert_eq!(accuracy(&evaluation), 0.5);
    }
}
