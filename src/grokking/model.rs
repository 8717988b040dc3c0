//! The embedding-sum network: `one_hot(a) ++ one_hot(b) -> ReLU hidden layer -> logits`, no
//! biases.
//!
//! A first layer `W1` of shape `(hidden, 2p)` applied to the concatenated one-hot vectors picks
//! column `a` and column `p + b`. The network therefore stores it as two embedding tables
//! `E_a = W1[:, ..p]^T` and `E_b = W1[:, p..]^T` of shape `(p, hidden)`, and computes
//! `h = relu(E_a[a] + E_b[b])` by gathering two rows. The output layer keeps PyTorch's
//! `nn.Linear` layout `(classes, hidden)`: `logits = h W2^T`.

use ndarray::linalg::general_mat_mul;
use ndarray::{concatenate, s, Array2, ArrayView2, ArrayViewMut2, Axis};
use ndarray_rand::rand::Rng;
use ndarray_rand::rand_distr::Uniform;
use ndarray_rand::RandomExt;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::model::{log_softmax, Model};

/// Two-layer ReLU network on a pair of operands whose first layer is an embedding sum.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingMlp {
    embedding_a: Array2<f32>,
    embedding_b: Array2<f32>,
    output: Array2<f32>,
}

impl EmbeddingMlp {
    /// Creates a network from its embedding tables, each of shape `(operands, hidden)`, and its
    /// output weight of shape `(classes, hidden)`.
    ///
    /// # Errors
    /// Returns [`Error::Empty`] when a dimension is zero, [`Error::ShapeMismatch`] when the
    /// shapes disagree, and [`Error::NonFinite`] for a NaN or infinite weight.
    pub fn new(
        embedding_a: Array2<f32>,
        embedding_b: Array2<f32>,
        output: Array2<f32>,
    ) -> Result<Self> {
        if embedding_a.is_empty() || output.is_empty() {
            return Err(Error::Empty("embedding network weight"));
        }
        if embedding_b.shape() != embedding_a.shape() {
            return Err(Error::shape(
                "second embedding table",
                embedding_a.shape(),
                embedding_b.shape(),
            ));
        }
        if output.ncols() != embedding_a.ncols() {
            return Err(Error::shape(
                "output weight",
                &[output.nrows(), embedding_a.ncols()],
                output.shape(),
            ));
        }
        for (what, weight) in [
            ("first embedding weight", &embedding_a),
            ("second embedding weight", &embedding_b),
            ("output weight", &output),
        ] {
            if let Some(index) = weight.iter().position(|value| !value.is_finite()) {
                return Err(Error::NonFinite {
                    what,
                    value: f64::from(weight.iter().nth(index).copied().unwrap_or(f32::NAN)),
                    index,
                });
            }
        }
        // Standard layout keeps every row a contiguous slice for the gather and the optimizer.
        Ok(EmbeddingMlp {
            embedding_a: embedding_a.as_standard_layout().into_owned(),
            embedding_b: embedding_b.as_standard_layout().into_owned(),
            output: output.as_standard_layout().into_owned(),
        })
    }

    /// Creates a network for operands and classes in `0..modulus` with PyTorch's default
    /// initialisation of bias-free `nn.Linear` layers: the first layer (fan-in `2 * modulus`)
    /// from `U(-1/sqrt(2 modulus), 1/sqrt(2 modulus))`, the output layer (fan-in `hidden`) from
    /// `U(-1/sqrt(hidden), 1/sqrt(hidden))`.
    ///
    /// # Errors
    /// Returns [`Error::InvalidParameter`] when `modulus` or `hidden` is zero.
    pub fn init<R: Rng + ?Sized>(modulus: usize, hidden: usize, rng: &mut R) -> Result<Self> {
        if modulus < 2 {
            return Err(Error::invalid_parameter("modulus", modulus, "at least 2"));
        }
        if hidden == 0 {
            return Err(Error::invalid_parameter(
                "hidden width",
                0,
                "at least 1, for example 256",
            ));
        }
        crate::mlp::check_tensor_size("embedding network size", &[3, modulus, hidden])?;
        let uniform = |fan_in: usize| {
            let bound = 1.0 / (fan_in as f32).sqrt();
            Uniform::new(-bound, bound).map_err(|error| {
                Error::invalid_parameter("initialisation bound", bound, error.to_string())
            })
        };
        let first = uniform(2 * modulus)?;
        let second = uniform(hidden)?;
        let embedding_a = Array2::random_using((modulus, hidden), first, rng);
        let embedding_b = Array2::random_using((modulus, hidden), first, rng);
        let output = Array2::random_using((modulus, hidden), second, rng);
        EmbeddingMlp::new(embedding_a, embedding_b, output)
    }

    /// Creates a network from a first-layer weight of shape `(hidden, 2 * operands)` in
    /// `nn.Linear` layout, the product form of the same network.
    ///
    /// # Errors
    /// Returns [`Error::ShapeMismatch`] when the column count is odd, and the errors of
    /// [`EmbeddingMlp::new`].
    pub fn from_first_layer(first: ArrayView2<f32>, output: Array2<f32>) -> Result<Self> {
        if first.ncols() % 2 != 0 {
            return Err(Error::shape(
                "first-layer weight (an even column count)",
                &[first.nrows(), first.ncols() + 1],
                first.shape(),
            ));
        }
        let operands = first.ncols() / 2;
        let embedding_a = first.slice(s![.., ..operands]).t().to_owned();
        let embedding_b = first.slice(s![.., operands..]).t().to_owned();
        EmbeddingMlp::new(embedding_a, embedding_b, output)
    }

    /// Returns the first layer in `nn.Linear` layout, `(hidden, 2 * operands)`: `[E_a^T, E_b^T]`.
    pub fn first_layer(&self) -> Array2<f32> {
        concatenate![Axis(1), self.embedding_a.t(), self.embedding_b.t()]
    }

    /// Returns the embedding table of the first operand, `(operands, hidden)`.
    pub fn embedding_a(&self) -> &Array2<f32> {
        &self.embedding_a
    }

    /// Returns the embedding table of the second operand, `(operands, hidden)`.
    pub fn embedding_b(&self) -> &Array2<f32> {
        &self.embedding_b
    }

    /// Returns the output weight, `(classes, hidden)`.
    pub fn output(&self) -> &Array2<f32> {
        &self.output
    }

    /// Returns the three weight tensors in a fixed order (`E_a`, `E_b`, `W2`) for in-place
    /// updates that keep their shapes.
    pub(crate) fn weights_mut(&mut self) -> [&mut Array2<f32>; 3] {
        [
            &mut self.embedding_a,
            &mut self.embedding_b,
            &mut self.output,
        ]
    }

    /// Returns the number of values an operand can take.
    pub fn n_operands(&self) -> usize {
        self.embedding_a.nrows()
    }

    /// Returns the hidden width.
    pub fn hidden(&self) -> usize {
        self.embedding_a.ncols()
    }

    /// Checks that every operand is below [`EmbeddingMlp::n_operands`].
    ///
    /// # Errors
    /// Returns [`Error::Empty`] for no pairs and [`Error::InvalidParameter`] naming the first
    /// pair with an operand out of range.
    pub fn check_pairs(&self, pairs: &[[usize; 2]]) -> Result<()> {
        if pairs.is_empty() {
            return Err(Error::Empty("list of operand pairs"));
        }
        let operands = self.n_operands();
        match pairs
            .iter()
            .position(|pair| pair.iter().any(|&x| x >= operands))
        {
            Some(index) => Err(Error::invalid_parameter(
                "operand pair",
                format!("{:?} at index {index}", pairs[index]),
                format!("operands in 0..{operands}"),
            )),
            None => Ok(()),
        }
    }

    /// Writes the hidden activations `relu(E_a[a] + E_b[b])` of checked pairs into `hidden`,
    /// shape `(pairs, hidden)`.
    pub(crate) fn hidden_into(&self, pairs: &[[usize; 2]], hidden: &mut ArrayViewMut2<f32>) {
        hidden
            .axis_iter_mut(Axis(0))
            .into_par_iter()
            .zip(pairs.par_iter())
            .with_min_len(64)
            .for_each(|(mut row, &[a, b])| {
                let first = self.embedding_a.row(a);
                let second = self.embedding_b.row(b);
                ndarray::Zip::from(&mut row)
                    .and(&first)
                    .and(&second)
                    .for_each(|out, &x, &y| *out = (x + y).max(0.0));
            });
    }

    /// Writes `logits = hidden W2^T`, shape `(pairs, classes)`.
    pub(crate) fn logits_into(&self, hidden: ArrayView2<f32>, logits: &mut ArrayViewMut2<f32>) {
        general_mat_mul(1.0, &hidden, &self.output.t(), 0.0, logits);
    }

    /// Computes the logits of a batch of operand pairs, shape `(pairs, classes)`.
    ///
    /// # Errors
    /// Returns the errors of [`EmbeddingMlp::check_pairs`].
    pub fn logits(&self, pairs: &[[usize; 2]]) -> Result<Array2<f32>> {
        self.check_pairs(pairs)?;
        let mut hidden = Array2::<f32>::zeros((pairs.len(), self.hidden()));
        self.hidden_into(pairs, &mut hidden.view_mut());
        let mut logits = Array2::<f32>::zeros((pairs.len(), self.output.nrows()));
        self.logits_into(hidden.view(), &mut logits.view_mut());
        Ok(logits)
    }
}

impl Model for EmbeddingMlp {
    type Input = [[usize; 2]];

    fn log_probs(&self, inputs: &[[usize; 2]]) -> Result<Array2<f64>> {
        log_softmax(self.logits(inputs)?.view())
    }

    fn n_classes(&self) -> usize {
        self.output.nrows()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;
    use ndarray_rand::rand::rngs::StdRng;
    use ndarray_rand::rand::SeedableRng;

    #[test]
    fn init_uses_fan_in_bounds() {
        let network = EmbeddingMlp::init(50, 16, &mut StdRng::seed_from_u64(0)).unwrap();
        let first_bound = 1.0 / 100f32.sqrt();
        let second_bound = 1.0 / 16f32.sqrt();
        assert!(network.embedding_a().iter().all(|w| w.abs() <= first_bound));
        assert!(network.embedding_b().iter().all(|w| w.abs() <= first_bound));
        assert!(network.output().iter().all(|w| w.abs() <= second_bound));
        // The output draws should reach beyond the first layer's narrower bound.
        assert!(network.output().iter().any(|w| w.abs() > first_bound));
    }

    #[test]
    fn first_layer_round_trips() {
        let network = EmbeddingMlp::init(5, 3, &mut StdRng::seed_from_u64(2)).unwrap();
        let first = network.first_layer();
        assert_eq!(first.shape(), &[3, 10]);
        let rebuilt =
            EmbeddingMlp::from_first_layer(first.view(), network.output().clone()).unwrap();
        assert_eq!(rebuilt, network);
    }

    #[test]
    fn hidden_layer_is_relu_of_row_sum() {
        let network = EmbeddingMlp::new(
            array![[1.0f32, -2.0], [0.5, 0.5]],
            array![[0.25f32, 1.0], [-3.0, 4.0]],
            array![[1.0f32, 0.0], [0.0, 1.0]],
        )
        .unwrap();
        let logits = network.logits(&[[0, 1], [1, 0]]).unwrap();
        assert_eq!(logits, array![[0.0f32, 2.0], [0.75, 1.5]]);
    }

    #[test]
    fn new_rejects_mismatched_shapes() {
        let table = Array2::<f32>::zeros((4, 3));
        let error = EmbeddingMlp::new(table.clone(), Array2::zeros((4, 2)), Array2::zeros((4, 3)))
            .unwrap_err();
        assert!(matches!(error, Error::ShapeMismatch { .. }));
        let error =
            EmbeddingMlp::new(table.clone(), table.clone(), Array2::zeros((4, 2))).unwrap_err();
        assert!(matches!(error, Error::ShapeMismatch { .. }));
        let mut bad = table.clone();
        bad[[1, 2]] = f32::NAN;
        let error = EmbeddingMlp::new(table.clone(), bad, Array2::zeros((4, 3))).unwrap_err();
        assert!(matches!(error, Error::NonFinite { index: 5, .. }));
    }

    #[test]
    fn log_probs_reject_operand_out_of_range() {
        let network = EmbeddingMlp::init(5, 3, &mut StdRng::seed_from_u64(2)).unwrap();
        let error = network.log_probs(&[[0, 1], [2, 5]]).unwrap_err();
        assert!(error.to_string().contains("[2, 5] at index 1"), "{error}");
        assert!(matches!(network.log_probs(&[]), Err(Error::Empty(_))));
    }
}
