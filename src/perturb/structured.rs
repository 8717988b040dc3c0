//! Structured pruning: removing whole hidden neurons of an [`Mlp`].
//!
//! Removing hidden neuron `i` of layer `l` zeroes row `i` of that layer's weight (the neuron's
//! incoming weights), entry `i` of its bias, and column `i` of the next layer's weight (its
//! outgoing weights). The neuron's activation is then `relu(0) = 0` and nothing reaches the
//! next layer, so the network computes exactly what the network without that neuron computes.
//! The output layer's neurons are never removed.
//!
//! A level is the fraction of hidden neurons removed. `k = round_half_even(fraction * n)` as in
//! [`pruning_count`], so 50% of a single neuron removes none. Every pruner ranks the neurons once
//! per call and removes the first `k`. The ranking does not depend on the fraction, so the
//! removed sets are nested along a sweep.

use ndarray::Axis;
use ndarray_rand::rand::rngs::StdRng;
use ndarray_rand::rand::seq::SliceRandom;
use ndarray_rand::rand::SeedableRng;
use serde::Serialize;

use super::{pruning_count, Perturbation};
use crate::error::{Error, Result};
use crate::mlp::Mlp;

/// A hidden neuron: the index of the layer that computes it and its output index in that layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Neuron {
    /// Index of the layer whose output the neuron is, input layer first.
    pub layer: usize,
    /// Row of the neuron in that layer's weight matrix.
    pub index: usize,
}

/// Norm of a neuron's incoming weights, the score by which [`StructuredPruning`] ranks neurons.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NeuronNorm {
    /// `sum_j |w_ij|`.
    L1,
    /// `sqrt(sum_j w_ij^2)`.
    #[default]
    L2,
}

/// Whether neurons compete for removal across all hidden layers or within each layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NeuronScope {
    /// One ranking over all hidden neurons; `k` counts all of them.
    #[default]
    Global,
    /// A separate ranking in every hidden layer, removing `round_half_even(fraction * n_l)` of
    /// each layer's `n_l` neurons.
    PerLayer,
}

/// Returns the number of hidden neurons: the outputs of every layer except the last.
pub fn hidden_neuron_count(network: &Mlp) -> usize {
    let layers = network.layers();
    layers[..layers.len() - 1]
        .iter()
        .map(|layer| layer.out_features())
        .sum()
}

/// Removes one hidden neuron in place: zeroes its incoming weights, its bias and its outgoing
/// weights (see the module docs).
///
/// # Errors
/// Returns [`Error::InvalidParameter`] when `neuron.layer` is the output layer or beyond, or when
/// `neuron.index` is not below that layer's width.
pub fn remove_neuron(network: &mut Mlp, neuron: Neuron) -> Result<()> {
    let hidden_layers = network.layers().len() - 1;
    if neuron.layer >= hidden_layers {
        return Err(Error::invalid_parameter(
            "neuron layer",
            neuron.layer,
            format!(
                "the index of a hidden layer, below {hidden_layers}; output neurons cannot be removed"
            ),
        ));
    }
    let width = network.layers()[neuron.layer].out_features();
    if neuron.index >= width {
        return Err(Error::invalid_parameter(
            "neuron index",
            neuron.index,
            format!("an index below the width {width} of layer {}", neuron.layer),
        ));
    }
    let layers = network.layers_mut();
    layers[neuron.layer]
        .weight_mut()
        .row_mut(neuron.index)
        .fill(0.0);
    layers[neuron.layer].bias_mut()[neuron.index] = 0.0;
    layers[neuron.layer + 1]
        .weight_mut()
        .column_mut(neuron.index)
        .fill(0.0);
    Ok(())
}

/// Computes the norm of every hidden neuron's incoming weights (the bias is not counted), in
/// `f64`, in layer order and then neuron order.
pub fn neuron_norms(network: &Mlp, norm: NeuronNorm) -> Vec<(Neuron, f64)> {
    let layers = network.layers();
    let mut norms = Vec::with_capacity(hidden_neuron_count(network));
    for (layer_index, layer) in layers[..layers.len() - 1].iter().enumerate() {
        for (index, row) in layer.weight().axis_iter(Axis(0)).enumerate() {
            let value = match norm {
                NeuronNorm::L1 => row.iter().map(|&w| f64::from(w).abs()).sum(),
                NeuronNorm::L2 => row
                    .iter()
                    .map(|&w| f64::from(w) * f64::from(w))
                    .sum::<f64>()
                    .sqrt(),
            };
            norms.push((
                Neuron {
                    layer: layer_index,
                    index,
                },
                value,
            ));
        }
    }
    norms
}

/// Sorts neurons by norm, smallest first. The sort is stable, so equal norms keep layer order
/// and then neuron order.
fn rank_by_norm(mut norms: Vec<(Neuron, f64)>) -> Vec<Neuron> {
    norms.sort_by(|a, b| a.1.total_cmp(&b.1));
    norms.into_iter().map(|(neuron, _)| neuron).collect()
}

fn check_fraction(fraction: f64) -> Result<()> {
    if (0.0..=1.0).contains(&fraction) {
        Ok(())
    } else {
        Err(Error::invalid_parameter(
            "neuron pruning fraction",
            fraction,
            "a fraction of hidden neurons in [0, 1], for example 0.5",
        ))
    }
}

fn remove_all(network: &Mlp, neurons: &[Neuron]) -> Result<Mlp> {
    let mut pruned = network.clone();
    for &neuron in neurons {
        remove_neuron(&mut pruned, neuron)?;
    }
    Ok(pruned)
}

/// Magnitude-based structured pruning: removes the hidden neurons whose incoming weights have
/// the smallest norm.
///
/// With [`NeuronScope::Global`], norms of different layers are compared as they are. A layer
/// with more inputs tends to have larger L1 norms, so global L1 ranking removes neurons of
/// narrow-input layers first. A network with a single hidden layer ranks the same either way.
/// Fraction 0 returns an unchanged copy. Fraction 1 removes every hidden neuron, and the network
/// then predicts the output layer's bias for every input. A network without hidden layers has
/// nothing to remove and is returned unchanged at every fraction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StructuredPruning {
    /// Norm of the incoming weights that ranks the neurons.
    pub norm: NeuronNorm,
    /// Ranking across all hidden layers or within each.
    pub scope: NeuronScope,
}

impl StructuredPruning {
    /// Returns the neurons that `fraction` removes, in ranking order.
    ///
    /// # Errors
    /// Returns [`Error::InvalidParameter`] unless `fraction` lies in `[0, 1]`.
    pub fn removed_neurons(&self, network: &Mlp, fraction: f64) -> Result<Vec<Neuron>> {
        check_fraction(fraction)?;
        let norms = neuron_norms(network, self.norm);
        match self.scope {
            NeuronScope::Global => {
                let ranked = rank_by_norm(norms);
                let count = pruning_count(fraction, ranked.len())?;
                Ok(ranked[..count].to_vec())
            }
            NeuronScope::PerLayer => {
                let mut removed = Vec::new();
                for layer in 0..network.layers().len() - 1 {
                    let in_layer: Vec<(Neuron, f64)> = norms
                        .iter()
                        .copied()
                        .filter(|(neuron, _)| neuron.layer == layer)
                        .collect();
                    let ranked = rank_by_norm(in_layer);
                    let count = pruning_count(fraction, ranked.len())?;
                    removed.extend_from_slice(&ranked[..count]);
                }
                Ok(removed)
            }
        }
    }
}

impl Perturbation<Mlp> for StructuredPruning {
    fn apply(&self, network: &Mlp, fraction: f64) -> Result<Mlp> {
        remove_all(network, &self.removed_neurons(network, fraction)?)
    }

    fn name(&self) -> String {
        let norm = match self.norm {
            NeuronNorm::L1 => "L1",
            NeuronNorm::L2 => "L2",
        };
        let scope = match self.scope {
            NeuronScope::Global => "global",
            NeuronScope::PerLayer => "per layer",
        };
        format!("structured pruning ({norm}, {scope})")
    }

    fn check_level(&self, fraction: f64) -> Result<()> {
        check_fraction(fraction)
    }
}

/// Random structured pruning, the baseline for [`StructuredPruning`]: removes `k` hidden neurons
/// chosen uniformly at random across all hidden layers.
///
/// The permutation depends only on the seed and the network's shape, so the removed sets are
/// nested along a sweep and the same seed removes the same neurons.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RandomNeuronPruning {
    /// Seed of the permutation.
    pub seed: u64,
}

impl RandomNeuronPruning {
    /// Returns the neurons that `fraction` removes, in permutation order.
    ///
    /// # Errors
    /// Returns [`Error::InvalidParameter`] unless `fraction` lies in `[0, 1]`.
    pub fn removed_neurons(&self, network: &Mlp, fraction: f64) -> Result<Vec<Neuron>> {
        check_fraction(fraction)?;
        let mut order: Vec<Neuron> = neuron_norms(network, NeuronNorm::L1)
            .into_iter()
            .map(|(neuron, _)| neuron)
            .collect();
        let count = pruning_count(fraction, order.len())?;
        order.shuffle(&mut StdRng::seed_from_u64(self.seed));
        order.truncate(count);
        Ok(order)
    }
}

impl Perturbation<Mlp> for RandomNeuronPruning {
    fn apply(&self, network: &Mlp, fraction: f64) -> Result<Mlp> {
        remove_all(network, &self.removed_neurons(network, fraction)?)
    }

    fn name(&self) -> String {
        format!("random neuron pruning (seed {})", self.seed)
    }

    fn check_level(&self, fraction: f64) -> Result<()> {
        check_fraction(fraction)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mlp::Dense;
    use approx::assert_abs_diff_eq;
    use ndarray::{array, Array1, Array2};
    use ndarray_rand::rand::Rng;
    use proptest::prelude::*;

    fn seeded(sizes: &[usize], seed: u64) -> Mlp {
        Mlp::init(sizes, &mut StdRng::seed_from_u64(seed)).unwrap()
    }

    fn inputs(rows: usize, columns: usize, seed: u64) -> Array2<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        Array2::from_shape_fn((rows, columns), |_| rng.random_range(-1.0f32..1.0))
    }

    /// Builds the network that lacks the removed neurons altogether. A layer that loses every
    /// neuron keeps one placeholder neuron with zero incoming and outgoing weights, because a
    /// `Dense` layer cannot be empty.
    fn without_neurons(network: &Mlp, removed: &[Neuron]) -> Mlp {
        let layers = network.layers();
        let mut kept_inputs: Option<Vec<usize>> = Some((0..layers[0].in_features()).collect());
        let mut smaller = Vec::new();
        for (layer_index, layer) in layers.iter().enumerate() {
            let kept_outputs: Vec<usize> = (0..layer.out_features())
                .filter(|&index| {
                    !removed.contains(&Neuron {
                        layer: layer_index,
                        index,
                    })
                })
                .collect();
            let rows = layer.weight().select(Axis(0), &kept_outputs);
            let mut weight = match &kept_inputs {
                Some(columns) => rows.select(Axis(1), columns),
                None => Array2::zeros((kept_outputs.len(), 1)),
            };
            let mut bias = layer.bias().select(Axis(0), &kept_outputs);
            if kept_outputs.is_empty() {
                weight = Array2::zeros((1, weight.ncols()));
                bias = Array1::zeros(1);
                kept_inputs = None;
            } else {
                kept_inputs = Some(kept_outputs);
            }
            smaller.push(Dense::new(weight, bias).unwrap());
        }
        Mlp::new(smaller).unwrap()
    }

    #[test]
    fn remove_neuron_zeroes_row_bias_and_column() {
        let first = Dense::new(array![[1.0, 2.0], [3.0, 4.0]], array![0.5, -0.5]).unwrap();
        let second = Dense::new(array![[5.0, 6.0]], array![1.0]).unwrap();
        let mut network = Mlp::new(vec![first, second]).unwrap();
        remove_neuron(&mut network, Neuron { layer: 0, index: 1 }).unwrap();
        assert_eq!(
            network.layers()[0].weight(),
            &array![[1.0, 2.0], [0.0, 0.0]]
        );
        assert_eq!(network.layers()[0].bias(), &array![0.5, 0.0]);
        assert_eq!(network.layers()[1].weight(), &array![[5.0, 0.0]]);
        assert_eq!(network.layers()[1].bias(), &array![1.0]);
    }

    #[test]
    fn remove_neuron_rejects_output_and_out_of_range() {
        let mut network = seeded(&[4, 3, 2], 0);
        let output = remove_neuron(&mut network, Neuron { layer: 1, index: 0 }).unwrap_err();
        assert!(output
            .to_string()
            .contains("output neurons cannot be removed"));
        let beyond = remove_neuron(&mut network, Neuron { layer: 0, index: 3 }).unwrap_err();
        assert!(beyond.to_string().contains("neuron index = 3"));
    }

    #[test]
    fn ranking_uses_selected_norm() {
        // Row norms: L1 = (3, 2.5), L2 = (sqrt 5, sqrt 6.25).
        let first = Dense::new(array![[1.0, -2.0], [0.0, 2.5]], array![0.0, 0.0]).unwrap();
        let second = Dense::new(array![[1.0, 1.0]], array![0.0]).unwrap();
        let network = Mlp::new(vec![first, second]).unwrap();
        let by = |norm| {
            StructuredPruning {
                norm,
                scope: NeuronScope::Global,
            }
            .removed_neurons(&network, 0.5)
            .unwrap()
        };
        assert_eq!(by(NeuronNorm::L1), vec![Neuron { layer: 0, index: 1 }]);
        assert_eq!(by(NeuronNorm::L2), vec![Neuron { layer: 0, index: 0 }]);
    }

    #[test]
    fn ties_break_by_layer_then_index() {
        let first = Dense::new(Array2::from_elem((3, 2), 1.0), Array1::zeros(3)).unwrap();
        let second = Dense::new(Array2::from_elem((2, 3), 1.0), Array1::zeros(2)).unwrap();
        let output = Dense::new(Array2::from_elem((1, 2), 1.0), Array1::zeros(1)).unwrap();
        let network = Mlp::new(vec![first, second, output]).unwrap();
        let removed = StructuredPruning {
            norm: NeuronNorm::L1,
            scope: NeuronScope::Global,
        }
        .removed_neurons(&network, 0.4)
        .unwrap();
        // Every neuron of layer 0 has L1 norm 2 and every neuron of layer 1 has 3.
        assert_eq!(
            removed,
            vec![Neuron { layer: 0, index: 0 }, Neuron { layer: 0, index: 1 }]
        );
    }

    #[test]
    fn per_layer_scope_prunes_every_layer() {
        let network = seeded(&[6, 10, 4, 3], 2);
        let removed = StructuredPruning {
            norm: NeuronNorm::L2,
            scope: NeuronScope::PerLayer,
        }
        .removed_neurons(&network, 0.5)
        .unwrap();
        let in_first = removed.iter().filter(|neuron| neuron.layer == 0).count();
        let in_second = removed.iter().filter(|neuron| neuron.layer == 1).count();
        assert_eq!((in_first, in_second), (5, 2));
    }

    #[test]
    fn single_neuron_layer_follows_rounding() {
        let network = seeded(&[4, 1, 3], 5);
        let pruner = StructuredPruning::default();
        // round_half_even(0.5 * 1) = 0 neurons.
        assert_eq!(pruner.apply(&network, 0.5).unwrap(), network);
        let pruned = pruner.apply(&network, 1.0).unwrap();
        let logits = pruned.logits(inputs(5, 4, 1).view()).unwrap();
        let output_bias = network.layers()[1].bias();
        for row in logits.rows() {
            assert_eq!(row, output_bias);
        }
    }

    #[test]
    fn network_without_hidden_layers_is_unchanged() {
        let network = seeded(&[4, 3], 5);
        assert_eq!(hidden_neuron_count(&network), 0);
        for pruner in [
            &StructuredPruning::default() as &dyn Perturbation<Mlp>,
            &RandomNeuronPruning { seed: 1 },
        ] {
            assert_eq!(pruner.apply(&network, 1.0).unwrap(), network);
        }
    }

    #[test]
    fn structured_pruning_rejects_bad_fraction() {
        let network = seeded(&[4, 3, 2], 0);
        let error = StructuredPruning::default()
            .apply(&network, 1.5)
            .unwrap_err();
        assert!(error.to_string().contains("fraction of hidden neurons"));
        assert!(RandomNeuronPruning::default()
            .check_level(f64::NAN)
            .is_err());
    }

    #[test]
    fn random_neuron_pruning_is_seeded() {
        let network = seeded(&[6, 20, 3], 3);
        let removed = |seed| {
            RandomNeuronPruning { seed }
                .removed_neurons(&network, 0.5)
                .unwrap()
        };
        assert_eq!(removed(7), removed(7));
        assert_ne!(removed(7), removed(8));
        assert_eq!(removed(7).len(), 10);
    }

    proptest! {
        #[test]
        fn fraction_zero_keeps_model(seed in 0u64..1000) {
            let network = seeded(&[7, 6, 5, 3], seed);
            for pruner in [
                &StructuredPruning::default() as &dyn Perturbation<Mlp>,
                &StructuredPruning { norm: NeuronNorm::L1, scope: NeuronScope::PerLayer },
                &RandomNeuronPruning { seed },
            ] {
                prop_assert_eq!(pruner.apply(&network, 0.0).unwrap(), network.clone());
            }
        }

        #[test]
        fn removed_neurons_contribute_nothing(seed in 0u64..1000, fraction in 0.0f64..=1.0) {
            let network = seeded(&[7, 6, 5, 3], seed);
            let batch = inputs(16, 7, seed + 1);
            for (pruner, removed) in [
                (StructuredPruning::default().apply(&network, fraction).unwrap(),
                 StructuredPruning::default().removed_neurons(&network, fraction).unwrap()),
                (RandomNeuronPruning { seed }.apply(&network, fraction).unwrap(),
                 RandomNeuronPruning { seed }.removed_neurons(&network, fraction).unwrap()),
            ] {
                prop_assert_eq!(removed.len(), pruning_count(fraction, 11).unwrap());
                let smaller = without_neurons(&network, &removed);
                let expected = smaller.logits(batch.view()).unwrap();
                let actual = pruner.logits(batch.view()).unwrap();
                for (&a, &e) in actual.iter().zip(expected.iter()) {
                    assert_abs_diff_eq!(a, e, epsilon = 1e-5);
                }
            }
        }

        #[test]
        fn removed_sets_are_nested(seed in 0u64..1000, low in 0.0f64..=1.0, high in 0.0f64..=1.0) {
            let (low, high) = if low <= high { (low, high) } else { (high, low) };
            let network = seeded(&[7, 9, 5, 3], seed);
            let pruner = StructuredPruning { norm: NeuronNorm::L2, scope: NeuronScope::PerLayer };
            let light = pruner.removed_neurons(&network, low).unwrap();
            let heavy = pruner.removed_neurons(&network, high).unwrap();
            prop_assert!(light.iter().all(|neuron| heavy.contains(neuron)));
        }
    }
}
