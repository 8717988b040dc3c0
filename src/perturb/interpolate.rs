//! Model interpolation (merging): the parameters `(1 - alpha) theta_A + alpha theta_B` between a
//! model and a second one of the same shape.

use super::Perturbation;
use crate::error::{Error, Result};
use crate::mlp::Mlp;

/// Returns the network with parameters `(1 - alpha) * start + alpha * end`, computed in `f64` for
/// every weight and bias and stored as `f32`.
///
/// `alpha = 0` returns `start` and `alpha = 1` returns `end` exactly, because the other term is
/// then multiplied by zero.
///
/// # Errors
/// Returns [`Error::InvalidParameter`] unless `alpha` lies in `[0, 1]`, and
/// [`Error::ShapeMismatch`] when the two networks have different layer widths.
pub fn interpolate(start: &Mlp, end: &Mlp, alpha: f64) -> Result<Mlp> {
    check_alpha(alpha)?;
    if start.sizes() != end.sizes() {
        return Err(Error::shape(
            "interpolation endpoint layer widths",
            &start.sizes(),
            &end.sizes(),
        ));
    }
    let mix = |a: f32, b: f32| ((1.0 - alpha) * f64::from(a) + alpha * f64::from(b)) as f32;
    let mut merged = start.clone();
    for (layer, other) in merged.layers_mut().iter_mut().zip(end.layers()) {
        layer
            .weight_mut()
            .zip_mut_with(other.weight(), |a, &b| *a = mix(*a, b));
        layer
            .bias_mut()
            .zip_mut_with(other.bias(), |a, &b| *a = mix(*a, b));
    }
    Ok(merged)
}

/// Returns the default interpolation grid: `alpha` = 0, 0.05, ..., 1 (21 levels).
pub fn default_interpolation_levels() -> Vec<f64> {
    (0..=20).map(|step| f64::from(step) / 20.0).collect()
}

fn check_alpha(alpha: f64) -> Result<()> {
    if (0.0..=1.0).contains(&alpha) {
        Ok(())
    } else {
        Err(Error::invalid_parameter(
            "interpolation weight alpha",
            alpha,
            "a number in [0, 1], where 0 is the reference model and 1 the endpoint",
        ))
    }
}

/// Linear interpolation from the perturbed model toward a fixed endpoint; the level is `alpha`
/// in [`interpolate`].
///
/// Two networks trained from different initialisations are not aligned neuron by neuron: hidden
/// neuron 5 of one has no relation to hidden neuron 5 of the other. No permutation matching is
/// done here, so the midpoint of two independently trained networks is usually much worse than
/// either endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Interpolation {
    endpoint: Mlp,
    name: String,
}

impl Interpolation {
    /// Creates the interpolation toward `endpoint`, named `linear interpolation` in reports.
    pub fn new(endpoint: Mlp) -> Self {
        Interpolation {
            endpoint,
            name: "linear interpolation".into(),
        }
    }

    /// Sets the name used in reports, for example to say which model the endpoint is.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Returns the endpoint, the model reached at `alpha = 1`.
    pub fn endpoint(&self) -> &Mlp {
        &self.endpoint
    }
}

impl Perturbation<Mlp> for Interpolation {
    fn apply(&self, network: &Mlp, alpha: f64) -> Result<Mlp> {
        interpolate(network, &self.endpoint, alpha)
    }

    fn name(&self) -> String {
        self.name.clone()
    }

    fn check_level(&self, alpha: f64) -> Result<()> {
        check_alpha(alpha)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mlp::Dense;
    use ndarray::array;
    use ndarray_rand::rand::rngs::StdRng;
    use ndarray_rand::rand::SeedableRng;
    use proptest::prelude::*;

    fn seeded(seed: u64) -> Mlp {
        Mlp::init(&[9, 7, 4], &mut StdRng::seed_from_u64(seed)).unwrap()
    }

    #[test]
    fn interpolation_mixes_weights_and_biases() {
        let start = Mlp::new(vec![Dense::new(array![[0.0, 4.0]], array![1.0]).unwrap()]).unwrap();
        let end = Mlp::new(vec![Dense::new(array![[2.0, 0.0]], array![-1.0]).unwrap()]).unwrap();
        let merged = interpolate(&start, &end, 0.25).unwrap();
        assert_eq!(merged.layers()[0].weight(), &array![[0.5, 3.0]]);
        assert_eq!(merged.layers()[0].bias(), &array![0.5]);
    }

    #[test]
    fn interpolation_rejects_different_shapes() {
        let start = seeded(0);
        let end = Mlp::init(&[9, 8, 4], &mut StdRng::seed_from_u64(1)).unwrap();
        let error = Interpolation::new(end).apply(&start, 0.5).unwrap_err();
        assert!(matches!(error, Error::ShapeMismatch { .. }));
        assert!(error.to_string().contains("[9, 7, 4]"), "{error}");
    }

    #[test]
    fn interpolation_rejects_alpha_outside_unit_interval() {
        let merger = Interpolation::new(seeded(1));
        for alpha in [-0.01, 1.5, f64::NAN] {
            assert!(merger.check_level(alpha).is_err());
            assert!(merger.apply(&seeded(0), alpha).is_err());
        }
    }

    #[test]
    fn default_levels_span_unit_interval() {
        let levels = default_interpolation_levels();
        assert_eq!(levels.len(), 21);
        assert_eq!((levels[0], levels[10], levels[20]), (0.0, 0.5, 1.0));
    }

    #[test]
    fn interpolation_name_can_be_set() {
        let merger = Interpolation::new(seeded(1));
        assert_eq!(merger.name(), "linear interpolation");
        assert_eq!(merger.with_name("merge").name(), "merge");
    }

    proptest! {
        #[test]
        fn endpoints_are_exact(first in 0u64..1000, second in 0u64..1000) {
            let start = seeded(first);
            let end = seeded(second);
            let merger = Interpolation::new(end.clone());
            prop_assert_eq!(merger.apply(&start, 0.0).unwrap(), start);
            prop_assert_eq!(merger.apply(&seeded(first), 1.0).unwrap(), end);
        }

        #[test]
        fn interpolated_weights_lie_between_endpoints(seed in 0u64..1000, alpha in 0.0f64..=1.0) {
            let start = seeded(seed);
            let end = seeded(seed + 1000);
            let merged = interpolate(&start, &end, alpha).unwrap();
            for ((a, b), m) in start.layers().iter().zip(end.layers()).zip(merged.layers()) {
                for ((&x, &y), &z) in a.weight().iter().zip(b.weight()).zip(m.weight()) {
                    prop_assert!(z >= x.min(y) && z <= x.max(y));
                }
            }
        }
    }
}
