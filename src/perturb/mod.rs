//! Perturbations: ways to make a changed copy of a model at a given strength.

mod interpolate;
mod noise;
mod prune;
mod quantize;
mod structured;

pub use interpolate::{default_interpolation_levels, interpolate, Interpolation};
pub use noise::{default_noise_levels, weight_std, GaussianWeightNoise};
pub use prune::{
    pruning_count, sparsity, GlobalMagnitudePruning, LayerwiseMagnitudePruning, RandomPruning,
    Sparsity,
};
pub use quantize::{
    bit_width, default_bit_widths, quantize, Granularity, QuantScheme, Quantization, MAX_BITS,
};
pub use structured::{
    hidden_neuron_count, neuron_norms, remove_neuron, Neuron, NeuronNorm, NeuronScope,
    RandomNeuronPruning, StructuredPruning,
};

use crate::error::{Error, Result};

/// A family of changes to a model, indexed by a level whose meaning the perturbation defines:
/// the fraction of weights removed for pruning, the bit width for quantization, the noise scale
/// for weight noise.
///
/// A sweep calls [`Perturbation::check_level`] on every level before it evaluates any, then
/// [`Perturbation::apply`] on the reference model once per level, in the order given.
pub trait Perturbation<M> {
    /// Returns a perturbed copy of `model` at `level`; `model` itself is left unchanged.
    ///
    /// # Errors
    /// Implementations return an error for a level outside their range.
    fn apply(&self, model: &M, level: f64) -> Result<M>;

    /// Returns the name used in reports. Defaults to the type name.
    fn name(&self) -> String {
        let full = std::any::type_name::<Self>();
        full.rsplit("::").next().unwrap_or(full).to_string()
    }

    /// Checks a level before a sweep starts. The default accepts any finite number.
    ///
    /// # Errors
    /// Returns [`Error::NonFinite`] for NaN or infinite levels; implementations add their range.
    fn check_level(&self, level: f64) -> Result<()> {
        if level.is_finite() {
            Ok(())
        } else {
            Err(Error::NonFinite {
                what: "perturbation level",
                value: level,
                index: 0,
            })
        }
    }
}
