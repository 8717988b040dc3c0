//! A multilayer perceptron: dense layers with ReLU between them and a softmax output.
//!
//! Weights are stored as in PyTorch's `nn.Linear`: layer `l` contains `weight` of shape
//! `(out_features, in_features)` and `bias` of shape `(out_features,)`, and computes
//! `z = a W^T + b`. Hidden layers apply ReLU; the last layer's output are the logits.

mod io;
pub(crate) mod kernel;

use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut1, ArrayViewMut2, Axis};
use ndarray_rand::rand::Rng;
use ndarray_rand::rand_distr::Uniform;
use ndarray_rand::RandomExt;

use crate::error::{Error, Result};
use crate::model::{log_softmax, Model};
use kernel::PackedDense;

/// Rejects shapes whose element count would not fit in memory addressing, before an allocation
/// would panic or abort on them.
pub(crate) fn check_tensor_size(name: &'static str, shape: &[usize]) -> Result<()> {
    let elements = shape
        .iter()
        .try_fold(1usize, |product, &length| product.checked_mul(length));
    match elements {
        Some(count)
            if count
                .checked_mul(8)
                .is_some_and(|bytes| bytes <= isize::MAX as usize) =>
        {
            Ok(())
        }
        _ => Err(Error::invalid_parameter(
            name,
            format!("{shape:?}"),
            "a shape whose element count fits in memory",
        )),
    }
}

/// One fully connected layer, `z = a W^T + b`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    weight: Array2<f32>,
    bias: Array1<f32>,
}

impl Dense {
    /// Creates a layer from a weight matrix of shape `(out, in)` and a bias of length `out`.
    ///
    /// # Errors
    /// Returns [`Error::ShapeMismatch`] when the bias length differs from the weight's row count,
    /// [`Error::Empty`] for a layer without inputs or outputs, and [`Error::NonFinite`] for a NaN
    /// or infinite parameter.
    pub fn new(weight: Array2<f32>, bias: Array1<f32>) -> Result<Self> {
        if weight.nrows() == 0 || weight.ncols() == 0 {
            return Err(Error::Empty("dense layer (zero inputs or outputs)"));
        }
        if bias.len() != weight.nrows() {
            return Err(Error::shape("dense bias", &[weight.nrows()], &[bias.len()]));
        }
        for (what, values) in [
            ("weight", weight.view().into_dyn()),
            ("bias", bias.view().into_dyn()),
        ] {
            if let Some((index, &value)) = values
                .iter()
                .enumerate()
                .find(|(_, value)| !value.is_finite())
            {
                return Err(Error::NonFinite {
                    what,
                    value: f64::from(value),
                    index,
                });
            }
        }
        Ok(Dense { weight, bias })
    }

    /// Creates a layer with PyTorch's default initialisation: weight and bias drawn from
    /// `U(-1/sqrt(in), 1/sqrt(in))`.
    pub fn init<R: Rng + ?Sized>(
        in_features: usize,
        out_features: usize,
        rng: &mut R,
    ) -> Result<Self> {
        if in_features == 0 || out_features == 0 {
            return Err(Error::invalid_parameter(
                "layer size",
                format!("{in_features} -> {out_features}"),
                "at least one input and one output",
            ));
        }
        check_tensor_size("layer size", &[out_features, in_features])?;
        let bound = 1.0 / (in_features as f32).sqrt();
        let distribution = Uniform::new(-bound, bound).map_err(|error| {
            Error::invalid_parameter("initialisation bound", bound, error.to_string())
        })?;
        let weight = Array2::random_using((out_features, in_features), distribution, rng);
        let bias = Array1::random_using(out_features, distribution, rng);
        Ok(Dense { weight, bias })
    }

    /// Returns the weight matrix, shape `(out, in)`.
    pub fn weight(&self) -> &Array2<f32> {
        &self.weight
    }

    /// Returns the bias, length `out`.
    pub fn bias(&self) -> &Array1<f32> {
        &self.bias
    }

    /// Returns the weight matrix for in-place changes that keep its shape.
    pub fn weight_mut(&mut self) -> ArrayViewMut2<'_, f32> {
        self.weight.view_mut()
    }

    /// Returns the bias for in-place changes that keep its shape.
    pub fn bias_mut(&mut self) -> ArrayViewMut1<'_, f32> {
        self.bias.view_mut()
    }

    /// Returns the number of inputs.
    pub fn in_features(&self) -> usize {
        self.weight.ncols()
    }

    /// Returns the number of outputs.
    pub fn out_features(&self) -> usize {
        self.weight.nrows()
    }

    /// Computes `a W^T + b` for a batch `a` of shape `(samples, in)`.
    pub(crate) fn forward(&self, inputs: ArrayView2<f32>) -> Array2<f32> {
        let mut output = inputs.dot(&self.weight.t());
        output += &self.bias;
        output
    }
}

/// A ReLU multilayer perceptron with `f32` parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Mlp {
    layers: Vec<Dense>,
}

impl Mlp {
    /// Creates a network from its layers, input first.
    ///
    /// # Errors
    /// Returns [`Error::Empty`] for no layers and [`Error::ShapeMismatch`] when a layer's input
    /// count differs from the previous layer's output count.
    pub fn new(layers: Vec<Dense>) -> Result<Self> {
        if layers.is_empty() {
            return Err(Error::Empty("layer list"));
        }
        for pair in layers.windows(2) {
            if pair[1].in_features() != pair[0].out_features() {
                return Err(Error::shape(
                    "consecutive layers",
                    &[pair[0].out_features()],
                    &[pair[1].in_features()],
                ));
            }
        }
        Ok(Mlp { layers })
    }

    /// Creates a network with layer widths `sizes` (inputs first, classes last) and PyTorch's
    /// default initialisation; see [`Dense::init`].
    ///
    /// # Errors
    /// Returns [`Error::InvalidParameter`] for fewer than two sizes or a zero size.
    pub fn init<R: Rng + ?Sized>(sizes: &[usize], rng: &mut R) -> Result<Self> {
        if sizes.len() < 2 {
            return Err(Error::invalid_parameter(
                "layer sizes",
                format!("{sizes:?}"),
                "at least an input and an output size, for example [784, 128, 10]",
            ));
        }
        let layers = sizes
            .windows(2)
            .map(|pair| Dense::init(pair[0], pair[1], rng))
            .collect::<Result<Vec<_>>>()?;
        Mlp::new(layers)
    }

    /// Returns the layers, input first.
    pub fn layers(&self) -> &[Dense] {
        &self.layers
    }

    /// Returns the layers for in-place parameter changes.
    pub fn layers_mut(&mut self) -> &mut [Dense] {
        &mut self.layers
    }

    /// Returns the layer widths, inputs first, for example `[784, 128, 10]`.
    pub fn sizes(&self) -> Vec<usize> {
        std::iter::once(self.layers[0].in_features())
            .chain(self.layers.iter().map(Dense::out_features))
            .collect()
    }

    /// Returns the number of input features.
    pub fn in_features(&self) -> usize {
        self.layers[0].in_features()
    }

    /// Returns the number of weights (biases excluded).
    pub fn n_weights(&self) -> usize {
        self.layers.iter().map(|layer| layer.weight.len()).sum()
    }

    /// Returns the number of weights that are exactly zero.
    pub fn n_zero_weights(&self) -> usize {
        self.layers
            .iter()
            .map(|layer| layer.weight.iter().filter(|&&value| value == 0.0).count())
            .sum()
    }

    /// Checks that a batch has the network's input width.
    pub(crate) fn check_inputs(&self, inputs: ArrayView2<f32>) -> Result<()> {
        if inputs.ncols() != self.in_features() {
            return Err(Error::shape(
                "network input",
                &[inputs.nrows(), self.in_features()],
                inputs.shape(),
            ));
        }
        if inputs.nrows() == 0 {
            return Err(Error::Empty("input batch"));
        }
        Ok(())
    }

    /// Computes the logits of a batch of shape `(samples, in_features)`.
    ///
    /// The batch is evaluated in chunks of 256 samples on rayon's thread pool, with zero inputs
    /// skipped; see the kernel notes in the module source. Each logit is accumulated in `f32` in
    /// ascending input order, so the result is the same for every thread count. It can differ
    /// in the last bits from `inputs.dot(&weight.t())`, and between CPUs with and without FMA.
    ///
    /// Memory: besides the `(samples, classes)` output, each thread uses two
    /// `256 x widest-layer` buffers, and the weights are repacked once per call.
    ///
    /// # Errors
    /// Returns [`Error::ShapeMismatch`] for a wrong feature count and [`Error::Empty`] for an
    /// empty batch.
    pub fn logits(&self, inputs: ArrayView2<f32>) -> Result<Array2<f32>> {
        self.check_inputs(inputs)?;
        let inputs = inputs.as_standard_layout();
        let packed: Vec<PackedDense> = self.layers.iter().map(PackedDense::new).collect();
        let mut logits = Array2::<f32>::zeros((inputs.nrows(), self.n_classes()));
        kernel::forward(
            &packed,
            inputs
                .as_slice()
                .expect("a standard-layout array is contiguous"),
            logits.as_slice_mut().expect("a fresh array is contiguous"),
        );
        Ok(logits)
    }

    /// Returns the activations after each hidden layer's ReLU and the logits, for a batch.
    pub(crate) fn forward_all(&self, inputs: ArrayView2<f32>) -> Vec<Array2<f32>> {
        let mut outputs: Vec<Array2<f32>> = Vec::with_capacity(self.layers.len());
        for (index, layer) in self.layers.iter().enumerate() {
            let input = if index == 0 {
                inputs
            } else {
                outputs[index - 1].view()
            };
            let mut output = layer.forward(input);
            if index + 1 < self.layers.len() {
                output.mapv_inplace(kernel::relu);
            }
            outputs.push(output);
        }
        outputs
    }

    /// Returns the indices of the largest logit of every sample.
    ///
    /// # Errors
    /// Returns the errors of [`Mlp::logits`].
    pub fn predict_classes(&self, inputs: ArrayView2<f32>) -> Result<Vec<usize>> {
        let logits = self.logits(inputs)?;
        Ok(logits
            .axis_iter(Axis(0))
            .map(|row| {
                let mut best = 0;
                for (index, &value) in row.iter().enumerate() {
                    if value > row[best] {
                        best = index;
                    }
                }
                best
            })
            .collect())
    }
}

impl Model for Mlp {
    type Input = Array2<f32>;

    /// # Errors
    /// Returns the errors of [`Mlp::logits`], and [`Error::NonFinite`] naming the flat index of
    /// the first non-finite input (`what` is `"input"`) or, for finite inputs, of the first
    /// non-finite logit.
    fn log_probs(&self, inputs: &Array2<f32>) -> Result<Array2<f64>> {
        log_softmax(self.logits(inputs.view())?.view())
            .map_err(|error| blame_non_finite_input(error, inputs.view()))
    }

    fn n_classes(&self) -> usize {
        self.layers[self.layers.len() - 1].out_features()
    }
}

/// Replaces a non-finite logit error by one naming the first non-finite input, if there is one.
///
/// ReLU propagates NaN, so a NaN or infinite input reaches the logits, where log-softmax
/// rejects it. The input is scanned only on this error path.
pub(crate) fn blame_non_finite_input(error: Error, inputs: ArrayView2<f32>) -> Error {
    if !matches!(error, Error::NonFinite { what: "logit", .. }) {
        return error;
    }
    match inputs
        .iter()
        .enumerate()
        .find(|(_, value)| !value.is_finite())
    {
        Some((index, &value)) => Error::NonFinite {
            what: "input",
            value: f64::from(value),
            index,
        },
        None => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;
    use ndarray::array;
    use ndarray_rand::rand::rngs::StdRng;
    use ndarray_rand::rand::SeedableRng;

    fn tiny() -> Mlp {
        let first = Dense::new(array![[1.0, -1.0], [0.5, 2.0]], array![0.0, -1.0]).unwrap();
        let second = Dense::new(
            array![[1.0, 1.0], [-1.0, 2.0], [0.0, 0.0]],
            array![0.0, 0.5, 0.1],
        )
        .unwrap();
        Mlp::new(vec![first, second]).unwrap()
    }

    #[test]
    fn logits_match_hand_computation() {
        // x = (1, 2): hidden = relu((1 - 2, 0.5 + 4 - 1)) = (0, 3.5).
        let logits = tiny().logits(array![[1.0f32, 2.0]].view()).unwrap();
        assert_relative_eq!(logits[[0, 0]], 3.5);
        assert_relative_eq!(logits[[0, 1]], 7.5);
        assert_relative_eq!(logits[[0, 2]], 0.1);
    }

    #[test]
    fn nan_input_reaches_logits() {
        let network = tiny();
        let inputs = array![[1.0f32, 2.0], [f32::NAN, 0.5]];
        let logits = network.logits(inputs.view()).unwrap();
        assert!(logits.row(0).iter().all(|value| value.is_finite()));
        assert!(logits.row(1).iter().all(|value| value.is_nan()), "{logits}");
        let hidden = &network.forward_all(inputs.view())[0];
        assert!(hidden.row(1).iter().all(|value| value.is_nan()), "{hidden}");
    }

    #[test]
    fn log_probs_reject_nan_input() {
        let inputs = array![[1.0f32, 2.0], [-1.0, f32::NAN]];
        let error = tiny().log_probs(&inputs).unwrap_err();
        assert!(
            matches!(
                error,
                Error::NonFinite {
                    what: "input",
                    index: 3,
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn log_probs_reject_infinite_input() {
        let inputs = array![[f32::INFINITY, 2.0]];
        let error = tiny().log_probs(&inputs).unwrap_err();
        assert!(
            matches!(
                error,
                Error::NonFinite {
                    what: "input",
                    index: 0,
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn forward_all_ends_with_logits() {
        let network = tiny();
        let inputs = array![[1.0f32, 2.0], [-1.0, 0.5]];
        let outputs = network.forward_all(inputs.view());
        assert_eq!(outputs.len(), 2);
        assert_eq!(outputs[1], network.logits(inputs.view()).unwrap());
    }

    #[test]
    fn logits_do_not_depend_on_thread_count() {
        use ndarray_rand::rand::Rng;
        let mut rng = StdRng::seed_from_u64(11);
        let network = Mlp::init(&[784, 64, 10], &mut rng).unwrap();
        let inputs = Array2::from_shape_fn((1000, 784), |_| {
            if rng.random_bool(0.2) {
                rng.random_range(0.0f32..1.0)
            } else {
                0.0
            }
        });
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| network.logits(inputs.view()).unwrap())
        };
        let single = run(1);
        assert_eq!(single, run(2));
        assert_eq!(single, run(3));
        let expected = network.forward_all(inputs.view()).pop().unwrap();
        for (&got, &want) in single.iter().zip(expected.iter()) {
            assert_relative_eq!(got, want, epsilon = 1e-4);
        }
    }

    #[test]
    fn init_is_seeded_and_bounded() {
        let first = Mlp::init(&[784, 128, 10], &mut StdRng::seed_from_u64(7)).unwrap();
        let second = Mlp::init(&[784, 128, 10], &mut StdRng::seed_from_u64(7)).unwrap();
        assert_eq!(first, second);
        assert_eq!(first.sizes(), vec![784, 128, 10]);
        assert_eq!(first.n_weights(), 784 * 128 + 128 * 10);
        let bound = 1.0 / 784f32.sqrt();
        assert!(first.layers()[0]
            .weight()
            .iter()
            .all(|value| value.abs() <= bound));
    }

    #[test]
    fn init_rejects_overflowing_size() {
        let mut rng = StdRng::seed_from_u64(0);
        let error = Mlp::init(&[usize::MAX, 2], &mut rng).unwrap_err();
        assert!(matches!(error, Error::InvalidParameter { .. }), "{error}");
    }

    #[test]
    fn new_rejects_mismatched_layers() {
        let first = Dense::new(Array2::zeros((3, 2)), Array1::zeros(3)).unwrap();
        let second = Dense::new(Array2::zeros((1, 4)), Array1::zeros(1)).unwrap();
        assert!(matches!(
            Mlp::new(vec![first, second]),
            Err(Error::ShapeMismatch { .. })
        ));
        assert!(matches!(Mlp::new(vec![]), Err(Error::Empty(_))));
    }

    #[test]
    fn dense_rejects_bad_parameters() {
        assert!(matches!(
            Dense::new(Array2::zeros((3, 2)), Array1::zeros(2)),
            Err(Error::ShapeMismatch { .. })
        ));
        assert!(matches!(
            Dense::new(array![[f32::NAN]], array![0.0]),
            Err(Error::NonFinite { .. })
        ));
    }

    #[test]
    fn logits_reject_wrong_width() {
        let error = tiny().logits(Array2::zeros((4, 3)).view()).unwrap_err();
        assert!(matches!(error, Error::ShapeMismatch { .. }));
    }

    #[test]
    fn all_zero_network_evaluates_uniform() {
        let mut network = tiny();
        for layer in network.layers_mut() {
            layer.weight_mut().fill(0.0);
            layer.bias_mut().fill(0.0);
        }
        let log_probs = network.log_probs(&array![[3.0f32, 4.0]]).unwrap();
        for &value in log_probs.iter() {
            assert_relative_eq!(value, -(3f64.ln()), epsilon = 1e-12);
        }
    }
}
