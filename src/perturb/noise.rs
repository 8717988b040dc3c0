//! Gaussian weight noise: `W' = W + sigma * std(W) * Z` for every weight matrix, `Z` standard
//! normal.

use ndarray::Array2;
use ndarray_rand::rand::rngs::StdRng;
use ndarray_rand::rand::SeedableRng;
use ndarray_rand::rand_distr::StandardNormal;
use ndarray_rand::RandomExt;
use serde::Serialize;

use super::Perturbation;
use crate::error::{Error, Result};
use crate::mlp::Mlp;

/// Returns the population standard deviation of a matrix's entries (dividing by `n`), in `f64`.
pub fn weight_std(weight: &Array2<f32>) -> f64 {
    let count = weight.len() as f64;
    let mean = weight.iter().map(|&w| f64::from(w)).sum::<f64>() / count;
    let variance = weight
        .iter()
        .map(|&w| (f64::from(w) - mean).powi(2))
        .sum::<f64>()
        / count;
    variance.sqrt()
}

/// Returns the default noise grid, in multiples of `std(W)`: 0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4,
/// 0.5, 0.6, 0.8, 1, 1.25, 1.5 and 2 (14 levels).
pub fn default_noise_levels() -> Vec<f64> {
    vec![
        0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0,
    ]
}

/// Adds Gaussian noise to every weight matrix, scaled to the matrix's own spread:
/// `W'_ij = W_ij + sigma * std(W) * Z_ij` with `Z_ij ~ N(0, 1)` and `std` from [`weight_std`].
/// The level is `sigma`, a non-negative number; biases are left unchanged.
///
/// The draws `Z` depend only on the seed and the network's shape, matrix by matrix in layer order,
/// and not on `sigma`. A sweep over `sigma` therefore moves along one straight line in weight
/// space, and `sigma = 0` returns an unchanged copy. A matrix whose entries are all equal has
/// `std(W) = 0` and stays unchanged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct GaussianWeightNoise {
    /// Seed of the draws `Z`.
    pub seed: u64,
}

impl Perturbation<Mlp> for GaussianWeightNoise {
    fn apply(&self, network: &Mlp, sigma: f64) -> Result<Mlp> {
        self.check_level(sigma)?;
        let mut rng = StdRng::seed_from_u64(self.seed);
        let mut noisy = network.clone();
        for layer in noisy.layers_mut() {
            let draws: Array2<f64> =
                Array2::random_using(layer.weight().dim(), StandardNormal, &mut rng);
            let scale = sigma * weight_std(layer.weight());
            layer
                .weight_mut()
                .zip_mut_with(&draws, |w, &z| *w = (f64::from(*w) + scale * z) as f32);
        }
        Ok(noisy)
    }

    fn name(&self) -> String {
        format!("gaussian weight noise (seed {})", self.seed)
    }

    fn check_level(&self, sigma: f64) -> Result<()> {
        if sigma.is_finite() && sigma >= 0.0 {
            Ok(())
        } else {
            Err(Error::invalid_parameter(
                "noise scale sigma",
                sigma,
                "a finite multiple of std(W) at or above 0, for example 0.5",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mlp::Dense;
    use approx::assert_relative_eq;
    use ndarray::{array, Array1};
    use proptest::prelude::*;

    fn seeded(seed: u64) -> Mlp {
        Mlp::init(&[30, 20, 4], &mut StdRng::seed_from_u64(seed)).unwrap()
    }

    fn differences(noisy: &Mlp, network: &Mlp, layer: usize) -> Vec<f64> {
        noisy.layers()[layer]
            .weight()
            .iter()
            .zip(network.layers()[layer].weight().iter())
            .map(|(&after, &before)| f64::from(after) - f64::from(before))
            .collect()
    }

    #[test]
    fn weight_std_matches_hand_computation() {
        // Mean 2.5, squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5, variance 5 / 4.
        let weight = array![[1.0f32, 2.0], [3.0, 4.0]];
        assert_relative_eq!(weight_std(&weight), 1.25f64.sqrt(), epsilon = 1e-12);
    }

    #[test]
    fn noise_has_requested_spread() {
        let network = Mlp::init(&[400, 100, 4], &mut StdRng::seed_from_u64(1)).unwrap();
        let noisy = GaussianWeightNoise { seed: 5 }
            .apply(&network, 0.5)
            .unwrap();
        let noise = differences(&noisy, &network, 0);
        let count = noise.len() as f64;
        let mean = noise.iter().sum::<f64>() / count;
        let spread = (noise.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / count).sqrt();
        let expected = 0.5 * weight_std(network.layers()[0].weight());
        // 40000 draws: the sample standard deviation is within 2% of the true one.
        assert_relative_eq!(spread, expected, max_relative = 0.02);
        assert!(mean.abs() < 0.02 * expected);
    }

    #[test]
    fn noise_is_seeded_and_leaves_biases() {
        let network = seeded(2);
        let noisy = |seed| GaussianWeightNoise { seed }.apply(&network, 1.0).unwrap();
        assert_eq!(noisy(3), noisy(3));
        assert_ne!(noisy(3), noisy(4));
        for (after, before) in noisy(3).layers().iter().zip(network.layers()) {
            assert_eq!(after.bias(), before.bias());
        }
    }

    #[test]
    fn constant_matrix_stays_unchanged() {
        let first = Dense::new(Array2::from_elem((3, 2), 0.7), Array1::zeros(3)).unwrap();
        let second = Dense::new(array![[1.0, -1.0, 0.5]], array![0.0]).unwrap();
        let network = Mlp::new(vec![first, second]).unwrap();
        let noisy = GaussianWeightNoise { seed: 0 }
            .apply(&network, 2.0)
            .unwrap();
        assert_eq!(noisy.layers()[0], network.layers()[0]);
        assert_ne!(noisy.layers()[1], network.layers()[1]);
    }

    #[test]
    fn noise_rejects_negative_or_nan_sigma() {
        let network = seeded(0);
        for sigma in [-0.1, f64::NAN, f64::INFINITY] {
            let error = GaussianWeightNoise::default()
                .apply(&network, sigma)
                .unwrap_err();
            assert!(error.to_string().contains("noise scale sigma"), "{error}");
        }
    }

    proptest! {
        #[test]
        fn sigma_zero_keeps_model(seed in 0u64..1000) {
            let network = seeded(seed);
            prop_assert_eq!(GaussianWeightNoise { seed }.apply(&network, 0.0).unwrap(), network);
        }

        #[test]
        fn noise_grows_linearly_with_sigma(seed in 0u64..1000, sigma in 0.01f64..3.0) {
            let network = seeded(seed);
            let pruner = GaussianWeightNoise { seed };
            let single = differences(&pruner.apply(&network, sigma).unwrap(), &network, 0);
            let double = differences(&pruner.apply(&network, 2.0 * sigma).unwrap(), &network, 0);
            for (&one, &two) in single.iter().zip(&double) {
                // f32 storage rounds each weight to about 6e-8 relative.
                prop_assert!((two - 2.0 * one).abs() < 1e-6, "{} vs {}", two, 2.0 * one);
            }
        }
    }
}
