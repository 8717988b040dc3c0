//! Uniform weight quantization: round-to-nearest onto a grid of `2^k` or fewer values, then back
//! to `f32` ("fake quantization"), so the quantized network runs through the same forward pass.
//!
//! A *group* shares one grid: a whole tensor, or one output channel (one row of a weight matrix of
//! shape `(out, in)`). For a group `w` and `k` bits, with `round` rounding half away from zero:
//!
//! - **Symmetric**, `k >= 2`: `q_max = 2^(k-1) - 1`, `s = max|w| / q_max`,
//!   `q = clamp(round(w / s), -q_max, q_max)`, `w' = q s`. The clipping range is `[-max|w|, max|w|]`
//!   and the grid has `2^k - 1` values, symmetric around an exact zero (at 2 bits: `{-s, 0, s}`).
//! - **Affine**, `k >= 2`: `N = 2^k - 1`, `lo = min(min w, 0)`, `hi = max(max w, 0)`,
//!   `s = (hi - lo) / N`, zero point `z = clamp(round(-lo / s), 0, N)`,
//!   `q = clamp(round(w / s) + z, 0, N)`, `w' = (q - z) s`. The clipping range is `[lo, hi]`,
//!   widened to contain 0 and shifted by less than half a step so that 0 is a grid value, as in
//!   PyTorch's `MinMaxObserver` with `torch.per_tensor_affine`.
//! - **1 bit**, either scheme: `w' = s sign(w)` with `s = mean|w|` and `sign(0) = +1`, the
//!   deterministic binarization of BinaryConnect (Courbariaux et al., 2015) with the scale of
//!   XNOR-Net (Rastegari et al., 2016). A 1-bit grid has two values, so 0 is not one of them.
//!
//! For `k >= 2` the scale `s` is rounded down to `24 - k` significant bits. Every grid value
//! `(q - z) s` is then exact in `f32`, and quantizing a quantized group again finds the same scale
//! and zero point, so quantization is idempotent bit for bit. Rounding down cannot clip the group's
//! extremes by more than `(0.5 + 2^(2k-23))` steps, at most 0.508 of a step at 8 bits.
//!
//! Edge cases: an all-zero group stays zero. A constant group `c` maps to `q_max s` (symmetric) or
//! `N s` (affine), within a relative `2^(k-24)` of `c`. A group whose scale would fall below the
//! smallest normal `f32` (max |w| below about `1e-36`) is left unchanged, so no step divides by
//! zero and no NaN or infinity appears.

use ndarray::{ArrayViewMut, Axis, Dimension};
use serde::Serialize;

use super::Perturbation;
use crate::error::{Error, Result};
use crate::mlp::Mlp;

/// The largest supported bit width. Wider grids would need more significant bits than an `f32`
/// scale has left once every grid value must be exact (see the module docs).
pub const MAX_BITS: u32 = 8;

/// Mapping of a group's values onto the integer grid; the module docs give the formulas.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QuantScheme {
    /// Clipping range `[-max|w|, max|w|]`, zero point 0, `2^k - 1` grid values.
    #[default]
    Symmetric,
    /// Clipping range `[min(w, 0), max(w, 0)]` with an integer zero point, `2^k` grid values.
    Affine,
}

/// Grouping of the values that share one scale and zero point.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    /// One grid per weight matrix.
    PerTensor,
    /// One grid per output channel, a row of the weight matrix.
    #[default]
    PerChannel,
}

/// Returns the default bit-width sweep: 8, 7, ..., 1, widest first, so that the sweep goes
/// from mild to severe as pruning and noise sweeps do.
pub fn default_bit_widths() -> Vec<f64> {
    (1..=MAX_BITS).rev().map(f64::from).collect()
}

/// Converts a sweep level to a bit width.
///
/// # Errors
/// Returns [`Error::InvalidParameter`] unless `level` is a whole number from 1 to [`MAX_BITS`].
pub fn bit_width(level: f64) -> Result<u32> {
    if level.fract() == 0.0 && (1.0..=f64::from(MAX_BITS)).contains(&level) {
        Ok(level as u32)
    } else {
        Err(Error::invalid_parameter(
            "bit width",
            level,
            format!("a whole number of bits from 1 to {MAX_BITS}, for example 8"),
        ))
    }
}

/// Rounds a positive normal `f64` toward zero to `bits` significant bits by clearing the lower
/// mantissa bits.
fn truncate_significand(value: f64, bits: u32) -> f64 {
    let cleared = f64::MANTISSA_DIGITS - bits;
    f64::from_bits(value.to_bits() & (u64::MAX << cleared))
}

/// Returns the `f32` scale for a real-valued step, or `None` when it falls below the smallest
/// normal `f32` and the group is to be left unchanged.
fn grid_scale(step: f64, bits: u32) -> Option<f64> {
    let scale = truncate_significand(step, 24 - bits);
    (scale >= f64::from(f32::MIN_POSITIVE)).then_some(scale)
}

/// Quantizes every value of `values` on one shared grid, in place; see the module docs for the
/// mapping.
///
/// # Errors
/// Returns [`Error::InvalidParameter`] unless `bits` lies in `1..=MAX_BITS`.
pub fn quantize<D: Dimension>(
    mut values: ArrayViewMut<f32, D>,
    bits: u32,
    scheme: QuantScheme,
) -> Result<()> {
    bit_width(f64::from(bits))?;
    if values.is_empty() {
        return Ok(());
    }
    if bits == 1 {
        let sum: f64 = values.iter().map(|&w| f64::from(w).abs()).sum();
        let scale = (sum / values.len() as f64) as f32;
        values.mapv_inplace(|w| if w >= 0.0 { scale } else { -scale });
        return Ok(());
    }
    match scheme {
        QuantScheme::Symmetric => {
            let q_max = f64::from((1u32 << (bits - 1)) - 1);
            let max_abs = values
                .iter()
                .map(|&w| f64::from(w).abs())
                .fold(0.0, f64::max);
            if max_abs == 0.0 {
                return Ok(());
            }
            let Some(scale) = grid_scale(max_abs / q_max, bits) else {
                return Ok(());
            };
            values.mapv_inplace(|w| {
                let code = (f64::from(w) / scale).round().clamp(-q_max, q_max);
                (code * scale) as f32
            });
        }
        QuantScheme::Affine => {
            let levels = f64::from((1u32 << bits) - 1);
            let (low, high) = values.iter().fold((0.0f64, 0.0f64), |(low, high), &w| {
                (low.min(f64::from(w)), high.max(f64::from(w)))
            });
            if high - low == 0.0 {
                return Ok(());
            }
            let Some(scale) = grid_scale((high - low) / levels, bits) else {
                return Ok(());
            };
            let zero_point = (-low / scale).round().clamp(0.0, levels);
            values.mapv_inplace(|w| {
                let code = ((f64::from(w) / scale).round() + zero_point).clamp(0.0, levels);
                ((code - zero_point) * scale) as f32
            });
        }
    }
    Ok(())
}

/// Uniform round-to-nearest quantization of every weight matrix, and optionally every bias; the
/// level is the bit width, from 8 down to 1 in a sweep.
///
/// Weights are grouped per tensor or per output channel as set by `granularity`. Biases, when
/// included, are always quantized per tensor with the same scheme and bit width.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Quantization {
    /// Symmetric or affine grid.
    pub scheme: QuantScheme,
    /// One grid per tensor or per output channel.
    pub granularity: Granularity,
    /// Also quantize biases (per tensor).
    pub include_biases: bool,
}

impl Perturbation<Mlp> for Quantization {
    fn apply(&self, network: &Mlp, level: f64) -> Result<Mlp> {
        let bits = bit_width(level)?;
        let mut quantized = network.clone();
        for layer in quantized.layers_mut() {
            match self.granularity {
                Granularity::PerTensor => quantize(layer.weight_mut(), bits, self.scheme)?,
                Granularity::PerChannel => {
                    for channel in layer.weight_mut().axis_iter_mut(Axis(0)) {
                        quantize(channel, bits, self.scheme)?;
                    }
                }
            }
            if self.include_biases {
                quantize(layer.bias_mut(), bits, self.scheme)?;
            }
        }
        Ok(quantized)
    }

    fn name(&self) -> String {
        let scheme = match self.scheme {
            QuantScheme::Symmetric => "symmetric",
            QuantScheme::Affine => "affine",
        };
        let granularity = match self.granularity {
            Granularity::PerTensor => "per tensor",
            Granularity::PerChannel => "per channel",
        };
        let biases = if self.include_biases { ", biases" } else { "" };
        format!("quantization ({scheme}, {granularity}{biases})")
    }

    fn check_level(&self, level: f64) -> Result<()> {
        bit_width(level).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric::{llr_per_sample, Evaluation};
    use crate::model::Model;
    use approx::assert_relative_eq;
    use ndarray::{array, Array1, Array2};
    use ndarray_rand::rand::rngs::StdRng;
    use ndarray_rand::rand::{Rng, SeedableRng};
    use proptest::prelude::*;

    const SCHEMES: [QuantScheme; 2] = [QuantScheme::Symmetric, QuantScheme::Affine];

    fn quantized(values: &Array1<f32>, bits: u32, scheme: QuantScheme) -> Array1<f32> {
        let mut copy = values.clone();
        quantize(copy.view_mut(), bits, scheme).unwrap();
        copy
    }

    fn mean_abs_llr(reference: &Mlp, perturbed: &Mlp, inputs: &Array2<f32>) -> f64 {
        let labels = reference.predict(inputs).unwrap();
        let reference_log_probs = reference.log_probs(inputs).unwrap();
        let perturbed_log_probs = perturbed.log_probs(inputs).unwrap();
        let evaluation = Evaluation::new(
            reference_log_probs.view(),
            perturbed_log_probs.view(),
            &labels,
        )
        .unwrap();
        let llr = llr_per_sample(&evaluation);
        llr.iter().map(|value| value.abs()).sum::<f64>() / llr.len() as f64
    }

    #[test]
    fn symmetric_grid_matches_hand_computation() {
        // 3 bits: q_max = 3, s = 3 / 3 = 1; 0.5 and -0.5 round away from zero.
        let values = array![-3.0f32, 1.4, 0.5, -0.5, 0.0];
        assert_eq!(
            quantized(&values, 3, QuantScheme::Symmetric),
            array![-3.0, 1.0, 1.0, -1.0, 0.0]
        );
        // 2 bits: the ternary grid {-1, 0, 1} with s = max|w| = 1.
        let values = array![-1.0f32, 0.5, 0.25, 0.0];
        assert_eq!(
            quantized(&values, 2, QuantScheme::Symmetric),
            array![-1.0, 1.0, 0.0, 0.0]
        );
    }

    #[test]
    fn affine_grid_matches_hand_computation() {
        // 2 bits: N = 3, lo = -1, hi = 2, s = 1, z = 1.
        let values = array![-1.0f32, 0.4, 0.6, 2.0, 0.0];
        assert_eq!(
            quantized(&values, 2, QuantScheme::Affine),
            array![-1.0, 0.0, 1.0, 2.0, 0.0]
        );
        // All positive: lo = 0 and z = 0, so the grid is {0, 1, 2, 3}.
        let values = array![1.0f32, 2.2, 3.0];
        assert_eq!(
            quantized(&values, 2, QuantScheme::Affine),
            array![1.0, 2.0, 3.0]
        );
    }

    #[test]
    fn one_bit_is_sign_times_mean_magnitude() {
        let values = array![0.5f32, -1.5, 0.0, 1.0];
        for scheme in SCHEMES {
            assert_eq!(
                quantized(&values, 1, scheme),
                array![0.75, -0.75, 0.75, 0.75]
            );
        }
    }

    #[test]
    fn all_zero_group_stays_zero() {
        let zeros = Array1::<f32>::zeros(6);
        for scheme in SCHEMES {
            for bits in 1..=MAX_BITS {
                assert_eq!(quantized(&zeros, bits, scheme), zeros);
            }
        }
    }

    #[test]
    fn constant_group_stays_finite_and_close() {
        for constant in [0.3f32, -0.3, 1e-30, -2.5e30] {
            let values = Array1::from_elem(5, constant);
            for scheme in SCHEMES {
                for bits in 1..=MAX_BITS {
                    let result = quantized(&values, bits, scheme);
                    assert!(result.iter().all(|value| value.is_finite()));
                    for &value in &result {
                        assert_relative_eq!(value, constant, max_relative = 2e-4);
                    }
                }
            }
        }
    }

    #[test]
    fn tiny_group_is_left_unchanged() {
        let values = array![1e-40f32, -3e-41, 0.0];
        for scheme in SCHEMES {
            assert_eq!(quantized(&values, 8, scheme), values);
        }
    }

    #[test]
    fn per_channel_keeps_zero_rows() {
        let weight = array![[0.0f32, 0.0, 0.0], [0.2, -0.4, 0.1]];
        let layer = crate::mlp::Dense::new(weight, array![0.0, 0.0]).unwrap();
        let network = Mlp::new(vec![layer]).unwrap();
        for scheme in SCHEMES {
            let quantizer = Quantization {
                scheme,
                granularity: Granularity::PerChannel,
                include_biases: true,
            };
            let result = quantizer.apply(&network, 4.0).unwrap();
            let weight = result.layers()[0].weight();
            assert_eq!(weight.row(0), array![0.0f32, 0.0, 0.0]);
            assert!(weight.iter().all(|value| value.is_finite()));
        }
    }

    #[test]
    fn per_channel_uses_one_scale_per_row() {
        let weight = array![[1.0f32, 0.3], [100.0, 30.0]];
        let layer = crate::mlp::Dense::new(weight.clone(), array![0.0, 0.0]).unwrap();
        let network = Mlp::new(vec![layer]).unwrap();
        let per_channel = Quantization::default().apply(&network, 2.0).unwrap();
        let per_tensor = Quantization {
            granularity: Granularity::PerTensor,
            ..Quantization::default()
        }
        .apply(&network, 2.0)
        .unwrap();
        // Ternary grids: per row {-1, 0, 1} and {-100, 0, 100}; per tensor {-100, 0, 100}.
        assert_eq!(
            per_channel.layers()[0].weight(),
            &array![[1.0, 0.0], [100.0, 0.0]]
        );
        assert_eq!(
            per_tensor.layers()[0].weight(),
            &array![[0.0, 0.0], [100.0, 0.0]]
        );
    }

    #[test]
    fn biases_are_quantized_only_when_asked() {
        let network = Mlp::init(&[5, 4, 3], &mut StdRng::seed_from_u64(3)).unwrap();
        let without = Quantization::default().apply(&network, 2.0).unwrap();
        assert_eq!(without.layers()[0].bias(), network.layers()[0].bias());
        let with = Quantization {
            include_biases: true,
            ..Quantization::default()
        }
        .apply(&network, 2.0)
        .unwrap();
        assert_ne!(with.layers()[0].bias(), network.layers()[0].bias());
    }

    #[test]
    fn default_bit_widths_walk_down_from_eight() {
        assert_eq!(
            default_bit_widths(),
            vec![8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0]
        );
    }

    #[test]
    fn bit_width_rejects_zero_fractions_and_wide_grids() {
        assert_eq!(bit_width(8.0).unwrap(), 8);
        assert_eq!(bit_width(1.0).unwrap(), 1);
        for level in [0.0, -1.0, 2.5, 9.0, f64::NAN, f64::INFINITY] {
            let error = Quantization::default().check_level(level).unwrap_err();
            assert!(error.to_string().contains("bit width"), "{error}");
        }
        let mut values = array![1.0f32];
        assert!(quantize(values.view_mut(), 0, QuantScheme::Symmetric).is_err());
    }

    #[test]
    fn names_describe_the_configuration() {
        let quantizer = Quantization {
            scheme: QuantScheme::Affine,
            granularity: Granularity::PerTensor,
            include_biases: true,
        };
        assert_eq!(
            quantizer.name(),
            "quantization (affine, per tensor, biases)"
        );
    }

    fn values_strategy() -> impl Strategy<Value = Vec<f32>> {
        proptest::collection::vec(
            prop_oneof![Just(0.0f32), -10.0f32..10.0, -1e-3f32..1e-3],
            1..40,
        )
    }

    proptest! {
        #[test]
        fn quantization_is_idempotent(values in values_strategy(), bits in 1u32..=MAX_BITS) {
            let values = Array1::from(values);
            for scheme in SCHEMES {
                let once = quantized(&values, bits, scheme);
                let twice = quantized(&once, bits, scheme);
                prop_assert_eq!(&once, &twice, "{:?} at {} bits", scheme, bits);
            }
        }

        #[test]
        fn grid_has_at_most_two_to_the_bits_values(values in values_strategy(), bits in 1u32..=MAX_BITS) {
            let values = Array1::from(values);
            for (scheme, limit) in [
                (QuantScheme::Symmetric, (1usize << bits) - 1),
                (QuantScheme::Affine, 1usize << bits),
            ] {
                let mut distinct: Vec<f32> = quantized(&values, bits, scheme).to_vec();
                distinct.sort_by(f32::total_cmp);
                distinct.dedup();
                prop_assert!(distinct.len() <= limit.max(2));
            }
        }

        #[test]
        fn zero_maps_to_zero_and_error_stays_within_half_step(
            values in values_strategy(), bits in 2u32..=MAX_BITS
        ) {
            let mut values = values;
            values.push(0.0);
            let values = Array1::from(values);
            let max_abs = values.iter().fold(0.0f64, |max, &w| max.max(f64::from(w).abs()));
            let low = values.iter().fold(0.0f64, |low, &w| low.min(f64::from(w)));
            let high = values.iter().fold(0.0f64, |high, &w| high.max(f64::from(w)));
            for (scheme, step) in [
                (QuantScheme::Symmetric, max_abs / f64::from((1u32 << (bits - 1)) - 1)),
                (QuantScheme::Affine, (high - low) / f64::from((1u32 << bits) - 1)),
            ] {
                let result = quantized(&values, bits, scheme);
                prop_assert_eq!(result[result.len() - 1], 0.0);
                for (&before, &after) in values.iter().zip(result.iter()) {
                    let error = (f64::from(before) - f64::from(after)).abs();
                    prop_assert!(error <= 0.51 * step + 1e-30, "{:?}: {} -> {}", scheme, before, after);
                }
            }
        }

        #[test]
        fn eight_bits_move_llr_far_less_than_two(seed in 0u64..200) {
            let mut rng = StdRng::seed_from_u64(seed);
            let network = Mlp::init(&[20, 16, 5], &mut rng).unwrap();
            let inputs = Array2::from_shape_fn((64, 20), |_| rng.random_range(-2.0f32..2.0));
            for scheme in SCHEMES {
                let quantizer = Quantization { scheme, ..Quantization::default() };
                let eight = mean_abs_llr(&network, &quantizer.apply(&network, 8.0).unwrap(), &inputs);
                let two = mean_abs_llr(&network, &quantizer.apply(&network, 2.0).unwrap(), &inputs);
                prop_assert!(eight * 20.0 < two, "{:?}: 8 bits {} vs 2 bits {}", scheme, eight, two);
            }
        }
    }
}
