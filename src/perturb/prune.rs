//! Unstructured pruning: setting individual weights of an [`Mlp`] to zero.
//!
//! Every pruner here ranks the weights once per call and zeroes the first `k` of the ranking,
//! where `k = round_half_even(fraction * n)` as in PyTorch's `torch.nn.utils.prune` (25% of 10
//! weights prunes 2). Because the ranking does not depend on the fraction, the masks are nested:
//! every weight pruned at 40% is also pruned at 50%. Biases are never pruned unless a pruner's
//! docs say so.

use ndarray_rand::rand::rngs::StdRng;
use ndarray_rand::rand::seq::SliceRandom;
use ndarray_rand::rand::SeedableRng;
use rayon::slice::ParallelSliceMut;
use serde::Serialize;

use super::Perturbation;
use crate::error::{Error, Result};
use crate::mlp::Mlp;

/// Returns how many of `n` parameters a fraction prunes: `round_half_even(fraction * n)`.
///
/// # Errors
/// Returns [`Error::InvalidParameter`] unless `fraction` lies in `[0, 1]`.
pub fn pruning_count(fraction: f64, n: usize) -> Result<usize> {
    check_fraction(fraction)?;
    Ok(((fraction * n as f64).round_ties_even() as usize).min(n))
}

fn check_fraction(fraction: f64) -> Result<()> {
    if (0.0..=1.0).contains(&fraction) {
        Ok(())
    } else {
        Err(Error::invalid_parameter(
            "pruning fraction",
            fraction,
            "a fraction of weights in [0, 1], for example 0.75",
        ))
    }
}

/// Position of one parameter: layer index, whether it is a bias, flat index within the tensor.
pub(crate) type Position = (usize, bool, usize);

/// Lists parameter positions in layer order, weights row-major, optionally each layer's bias
/// after its weights.
fn positions(network: &Mlp, include_biases: bool) -> Vec<(Position, f32)> {
    let mut all = Vec::new();
    for (layer_index, layer) in network.layers().iter().enumerate() {
        all.extend(
            layer
                .weight()
                .iter()
                .enumerate()
                .map(|(flat, &value)| ((layer_index, false, flat), value)),
        );
        if include_biases {
            all.extend(
                layer
                    .bias()
                    .iter()
                    .enumerate()
                    .map(|(flat, &value)| ((layer_index, true, flat), value)),
            );
        }
    }
    all
}

/// Sorts positions by magnitude, smallest first, with equal magnitudes in the order of
/// `entries`.
///
/// The key packs the bits of `|w|` above the entry's index into one `u64`, so an unstable sort
/// of the keys gives the order of a stable sort by magnitude. For a sign-cleared `f32`, the
/// order of the bits as an unsigned integer is that of `total_cmp`.
fn rank_by_magnitude(entries: Vec<(Position, f32)>) -> Vec<Position> {
    if u32::try_from(entries.len()).is_err() {
        let mut entries = entries;
        entries.sort_by(|a, b| a.1.abs().total_cmp(&b.1.abs()));
        return entries.into_iter().map(|(position, _)| position).collect();
    }
    let mut keys: Vec<u64> = entries
        .iter()
        .enumerate()
        .map(|(index, &(_, value))| u64::from(value.abs().to_bits()) << 32 | index as u64)
        .collect();
    // The keys are distinct, so the parallel sort gives the same order for every thread count.
    keys.par_sort_unstable();
    keys.into_iter()
        .map(|key| entries[(key & u64::from(u32::MAX)) as usize].0)
        .collect()
}

fn zero_positions(network: &mut Mlp, ranked: &[Position]) {
    for &(layer_index, is_bias, flat) in ranked {
        let layer = &mut network.layers_mut()[layer_index];
        if is_bias {
            layer.bias_mut()[flat] = 0.0;
        } else {
            let mut weight = layer.weight_mut();
            let columns = weight.ncols();
            weight[[flat / columns, flat % columns]] = 0.0;
        }
    }
}

/// Global magnitude pruning: zeroes the `k` weights of smallest `|w|` across all weight matrices
/// together, with ties broken by position (layer order, then row-major).
///
/// With `|w| = [0.1, 0.1, 0.1, 0.5]` a fraction of 0.5 zeroes exactly the first two weights.
/// Fraction 0 returns an unchanged copy and fraction 1 zeroes every weight (the network then
/// predicts from its biases alone).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GlobalMagnitudePruning {
    /// Also rank and prune biases together with the weights.
    pub include_biases: bool,
}

impl GlobalMagnitudePruning {
    /// Returns the positions of all prunable parameters, in the order they are pruned.
    pub(crate) fn ranking(&self, network: &Mlp) -> Vec<Position> {
        rank_by_magnitude(positions(network, self.include_biases))
    }
}

impl Perturbation<Mlp> for GlobalMagnitudePruning {
    fn apply(&self, network: &Mlp, fraction: f64) -> Result<Mlp> {
        let ranked = self.ranking(network);
        let count = pruning_count(fraction, ranked.len())?;
        let mut pruned = network.clone();
        zero_positions(&mut pruned, &ranked[..count]);
        Ok(pruned)
    }

    fn name(&self) -> String {
        "global magnitude pruning".into()
    }

    fn check_level(&self, fraction: f64) -> Result<()> {
        check_fraction(fraction)
    }
}

/// Layer-wise magnitude pruning: zeroes `round_half_even(fraction * n_l)` weights of smallest
/// `|w|` in every weight matrix separately, ties broken by row-major position.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LayerwiseMagnitudePruning;

impl Perturbation<Mlp> for LayerwiseMagnitudePruning {
    fn apply(&self, network: &Mlp, fraction: f64) -> Result<Mlp> {
        check_fraction(fraction)?;
        let mut pruned = network.clone();
        for (layer_index, layer) in network.layers().iter().enumerate() {
            let entries = layer
                .weight()
                .iter()
                .enumerate()
                .map(|(flat, &value)| ((layer_index, false, flat), value))
                .collect();
            let ranked = rank_by_magnitude(entries);
            let count = pruning_count(fraction, ranked.len())?;
            zero_positions(&mut pruned, &ranked[..count]);
        }
        Ok(pruned)
    }

    fn name(&self) -> String {
        "layer-wise magnitude pruning".into()
    }

    fn check_level(&self, fraction: f64) -> Result<()> {
        check_fraction(fraction)
    }
}

/// Random pruning, the baseline for magnitude pruning: zeroes `k` weights chosen uniformly at
/// random across all weight matrices.
///
/// The permutation depends only on the seed and the network's shape, so masks are nested along a
/// sweep and the same seed prunes the same weights.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RandomPruning {
    /// Seed of the permutation.
    pub seed: u64,
}

impl Perturbation<Mlp> for RandomPruning {
    fn apply(&self, network: &Mlp, fraction: f64) -> Result<Mlp> {
        let mut order: Vec<Position> = positions(network, false)
            .into_iter()
            .map(|(position, _)| position)
            .collect();
        let count = pruning_count(fraction, order.len())?;
        order.shuffle(&mut StdRng::seed_from_u64(self.seed));
        let mut pruned = network.clone();
        zero_positions(&mut pruned, &order[..count]);
        Ok(pruned)
    }

    fn name(&self) -> String {
        format!("random pruning (seed {})", self.seed)
    }

    fn check_level(&self, fraction: f64) -> Result<()> {
        check_fraction(fraction)
    }
}

/// The share of weights that are exactly zero, overall and per layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sparsity {
    /// Zero weights over all weights.
    pub overall: f64,
    /// Zero weights over weights, for each layer, input first.
    pub per_layer: Vec<f64>,
}

/// Measures the sparsity a pruner actually reached, counting every weight that is exactly zero
/// (weights that were zero before pruning included). Biases are not counted.
pub fn sparsity(network: &Mlp) -> Sparsity {
    let per_layer = network
        .layers()
        .iter()
        .map(|layer| {
            let zeros = layer.weight().iter().filter(|&&value| value == 0.0).count();
            zeros as f64 / layer.weight().len() as f64
        })
        .collect();
    Sparsity {
        overall: network.n_zero_weights() as f64 / network.n_weights() as f64,
        per_layer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mlp::Dense;
    use crate::model::Model;
    use ndarray::{array, Array1, Array2};
    use proptest::prelude::*;

    fn network_from(first: Array2<f32>, second: Array2<f32>) -> Mlp {
        let first_bias = Array1::from_elem(first.nrows(), 0.5);
        let second_bias = Array1::from_elem(second.nrows(), -0.5);
        Mlp::new(vec![
            Dense::new(first, first_bias).unwrap(),
            Dense::new(second, second_bias).unwrap(),
        ])
        .unwrap()
    }

    fn seeded(seed: u64) -> Mlp {
        Mlp::init(&[6, 5, 3], &mut StdRng::seed_from_u64(seed)).unwrap()
    }

    #[test]
    fn pruning_count_rounds_half_to_even() {
        assert_eq!(pruning_count(0.25, 10).unwrap(), 2);
        assert_eq!(pruning_count(0.35, 10).unwrap(), 4);
        assert_eq!(pruning_count(0.05, 10).unwrap(), 0);
        assert_eq!(pruning_count(0.15, 10).unwrap(), 2);
        assert_eq!(pruning_count(1.0, 7).unwrap(), 7);
        assert!(pruning_count(1.5, 10).is_err());
        assert!(pruning_count(f64::NAN, 10).is_err());
    }

    #[test]
    fn global_pruning_breaks_ties_by_position() {
        let network = network_from(array![[0.1, -0.1], [0.1, 0.5]], array![[2.0, 3.0]]);
        let pruned = GlobalMagnitudePruning::default()
            .apply(&network, 2.0 / 6.0)
            .unwrap();
        assert_eq!(pruned.layers()[0].weight(), &array![[0.0, 0.0], [0.1, 0.5]]);
        assert_eq!(pruned.layers()[1].weight(), network.layers()[1].weight());
    }

    #[test]
    fn global_pruning_of_four_ties_prunes_first_two() {
        let network = network_from(array![[0.1, 0.1, 0.1, 0.5]], array![[1.0]]);
        // 50% of 5 weights is 2.5, which rounds to 2.
        let pruned = GlobalMagnitudePruning::default()
            .apply(&network, 0.5)
            .unwrap();
        assert_eq!(pruned.layers()[0].weight(), &array![[0.0, 0.0, 0.1, 0.5]]);
    }

    #[test]
    fn pruning_zero_fraction_keeps_model() {
        let network = seeded(1);
        for pruner in [
            &GlobalMagnitudePruning::default() as &dyn Perturbation<Mlp>,
            &LayerwiseMagnitudePruning,
            &RandomPruning { seed: 2 },
        ] {
            assert_eq!(pruner.apply(&network, 0.0).unwrap(), network);
        }
    }

    #[test]
    fn full_pruning_zeroes_weights_and_still_evaluates() {
        let network = seeded(1);
        let pruned = GlobalMagnitudePruning::default()
            .apply(&network, 1.0)
            .unwrap();
        assert_eq!(pruned.n_zero_weights(), pruned.n_weights());
        assert_eq!(pruned.layers()[0].bias(), network.layers()[0].bias());
        let log_probs = pruned.log_probs(&Array2::ones((2, 6))).unwrap();
        assert!(log_probs.iter().all(|value| value.is_finite()));
    }

    #[test]
    fn global_pruning_can_include_biases() {
        let network = seeded(1);
        let pruner = GlobalMagnitudePruning {
            include_biases: true,
        };
        let pruned = pruner.apply(&network, 1.0).unwrap();
        assert!(pruned
            .layers()
            .iter()
            .all(|layer| layer.bias().iter().all(|&b| b == 0.0)));
    }

    #[test]
    fn layerwise_pruning_hits_each_layer() {
        let network = seeded(4);
        let pruned = LayerwiseMagnitudePruning.apply(&network, 0.4).unwrap();
        let reached = sparsity(&pruned);
        assert_eq!(reached.per_layer, vec![12.0 / 30.0, 6.0 / 15.0]);
    }

    #[test]
    fn sparsity_counts_zero_weights() {
        let network = network_from(array![[0.0, 1.0], [2.0, 3.0]], array![[0.0, 0.0]]);
        let reached = sparsity(&network);
        assert_eq!(reached.overall, 3.0 / 6.0);
        assert_eq!(reached.per_layer, vec![0.25, 1.0]);
    }

    #[test]
    fn pruning_rejects_fraction_outside_unit_interval() {
        let network = seeded(1);
        let error = GlobalMagnitudePruning::default()
            .apply(&network, -0.1)
            .unwrap_err();
        assert!(error.to_string().contains("pruning fraction"));
        assert!(GlobalMagnitudePruning::default().check_level(1.01).is_err());
    }

    #[test]
    fn ranking_matches_stable_sort_by_magnitude() {
        // A coarse grid with both signs and both zeros gives many ties of |w|.
        let mut rng = StdRng::seed_from_u64(3);
        let entries: Vec<(Position, f32)> = (0..2000)
            .map(|flat| {
                let value = match rng.random_range(0..10) {
                    0 => -0.0,
                    1 => 0.0,
                    _ => rng.random_range(-8i32..=8) as f32 / 4.0,
                };
                ((flat / 700, flat % 3 == 0, flat), value)
            })
            .collect();
        let mut expected = entries.clone();
        expected.sort_by(|a, b| a.1.abs().total_cmp(&b.1.abs()));
        let expected: Vec<Position> = expected.into_iter().map(|(position, _)| position).collect();
        assert_eq!(rank_by_magnitude(entries), expected);
    }

    proptest! {
        #[test]
        fn pruning_masks_are_nested(seed in 0u64..1000, low in 0.0f64..1.0, high in 0.0f64..1.0) {
            let (low, high) = if low <= high { (low, high) } else { (high, low) };
            let network = seeded(seed);
            for pruner in [
                &GlobalMagnitudePruning::default() as &dyn Perturbation<Mlp>,
                &LayerwiseMagnitudePruning,
                &RandomPruning { seed },
            ] {
                let light = pruner.apply(&network, low).unwrap();
                let heavy = pruner.apply(&network, high).unwrap();
                prop_assert!(light.n_zero_weights() <= heavy.n_zero_weights());
                for (a, b) in light.layers().iter().zip(heavy.layers()) {
                    for (&kept_light, &kept_heavy) in a.weight().iter().zip(b.weight().iter()) {
                        prop_assert!(kept_light != 0.0 || kept_heavy == 0.0);
                    }
                }
            }
        }

        #[test]
        fn global_pruning_removes_exactly_k_smallest(seed in 0u64..1000, fraction in 0.0f64..=1.0) {
            let network = seeded(seed);
            let pruned = GlobalMagnitudePruning::default().apply(&network, fraction).unwrap();
            let count = pruning_count(fraction, network.n_weights()).unwrap();
            prop_assert_eq!(pruned.n_zero_weights(), count);
            let largest_pruned = network.layers().iter().zip(pruned.layers())
                .flat_map(|(a, b)| a.weight().iter().zip(b.weight().iter()).map(|(&x, &y)| (x, y)).collect::<Vec<_>>())
                .filter(|&(_, after)| after == 0.0)
                .map(|(before, _)| before.abs())
                .fold(0.0f32, f32::max);
            let smallest_kept = pruned.layers().iter()
                .flat_map(|layer| layer.weight().iter().copied().collect::<Vec<_>>())
                .filter(|&value| value != 0.0)
                .map(f32::abs)
                .fold(f32::INFINITY, f32::min);
            prop_assert!(largest_pruned <= smallest_kept);
        }
    }
}
