//! Full-batch training of an [`EmbeddingMlp`] with softmax cross-entropy, evaluated on the test
//! split as it trains.
//!
//! Every epoch is one forward pass over the whole training split, one backward pass and one
//! optimizer step per weight tensor. Epoch `e` names the model after `e` steps, so epoch 0 is the
//! initialisation. The forward pass that starts step `e + 1` also gives the training loss and
//! accuracy of epoch `e`, so training metrics cost nothing extra. Test log-probabilities are
//! computed in `f64` at every evaluated epoch and pushed through core [`Recorder`]s, so no
//! checkpoint is stored.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;
use serde::Serialize;

use super::data::{ModularDataset, ModularSplit};
use super::model::EmbeddingMlp;
use crate::error::{Error, Result};
use crate::metric::check_labels;
use crate::model::{log_softmax, Model};
use crate::optim::{Optimizer, OptimizerState};
use crate::sweep::{Recorder, Sweep, SweepResult};

/// The checkpoint that the information metrics compare every epoch against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reference {
    /// The first epoch at which every training sample is classified correctly.
    Memorization,
    /// A fixed epoch (0 is the initialisation).
    Epoch(usize),
}

/// Settings of a grokking run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GrokkingConfig {
    /// The last epoch trained, unless the run stops early.
    pub max_epochs: usize,
    /// Update rule; the grokking recipe is AdamW.
    pub optimizer: Optimizer,
    /// Evaluate the test split every this many epochs. The reference epoch and the last epoch
    /// are always evaluated.
    pub eval_every: usize,
    /// The checkpoint the LLR, KL and flip rate are measured against.
    pub reference: Reference,
    /// Also record every metric against the initialisation (epoch 0).
    pub against_init: bool,
    /// Stop early once test accuracy reaches this fraction; `None` trains to `max_epochs`.
    pub stop_accuracy: Option<f64>,
    /// Epochs to keep training after `stop_accuracy` is first reached.
    pub stop_patience: usize,
}

impl Default for GrokkingConfig {
    /// Returns the grokking recipe: AdamW with learning rate 1e-2, betas (0.9, 0.98), epsilon 1e-8 and
    /// weight decay 1.0, at most 3000 epochs, evaluated every epoch against the memorization
    /// checkpoint, stopping 200 epochs after test accuracy first reaches 99%.
    fn default() -> Self {
        GrokkingConfig {
            max_epochs: 3000,
            optimizer: Optimizer::Adam {
                learning_rate: 1e-2,
                beta1: 0.9,
                beta2: 0.98,
                epsilon: 1e-8,
                weight_decay: 1.0,
            },
            eval_every: 1,
            reference: Reference::Memorization,
            against_init: false,
            stop_accuracy: Some(0.99),
            stop_patience: 200,
        }
    }
}

impl GrokkingConfig {
    /// Checks the settings.
    ///
    /// # Errors
    /// Returns [`Error::InvalidParameter`] for zero epochs or a zero evaluation interval, a
    /// reference epoch after `max_epochs`, a stopping accuracy outside `(0, 1]`, and the errors
    /// of [`Optimizer::validate`].
    pub fn validate(&self) -> Result<()> {
        if self.max_epochs == 0 {
            return Err(Error::invalid_parameter("epochs", 0, "at least 1"));
        }
        if self.eval_every == 0 {
            return Err(Error::invalid_parameter(
                "evaluation interval",
                0,
                "at least 1 epoch",
            ));
        }
        if let Reference::Epoch(epoch) = self.reference {
            if epoch > self.max_epochs {
                return Err(Error::invalid_parameter(
                    "reference epoch",
                    epoch,
                    format!("an epoch in 0..={}", self.max_epochs),
                ));
            }
        }
        if let Some(accuracy) = self.stop_accuracy {
            if !(accuracy > 0.0 && accuracy <= 1.0) {
                return Err(Error::invalid_parameter(
                    "stopping accuracy",
                    accuracy,
                    "a fraction in (0, 1], for example 0.99",
                ));
            }
        }
        self.optimizer.validate()
    }
}

/// Losses and accuracies of one evaluated epoch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EpochStats {
    /// Number of optimizer steps taken; 0 is the initialisation.
    pub epoch: usize,
    /// Mean cross-entropy on the training split, in nats.
    pub train_loss: f64,
    /// Fraction of training samples classified correctly.
    pub train_accuracy: f64,
    /// Mean cross-entropy on the test split, in nats, from `f64` log-probabilities.
    pub test_loss: f64,
    /// Fraction of test samples classified correctly.
    pub test_accuracy: f64,
}

/// Everything a grokking run measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GrokkingRun {
    /// One entry per evaluated epoch, in order.
    pub history: Vec<EpochStats>,
    /// The first epoch with 100% training accuracy; `None` when the run never memorized.
    pub memorization_epoch: Option<usize>,
    /// The epoch of the reference checkpoint; `None` when it was never reached.
    pub reference_epoch: Option<usize>,
    /// Every test metric against the reference at each evaluated epoch from the reference epoch
    /// on, with levels named `epoch`. `None` when the reference was never reached.
    pub against_reference: Option<SweepResult>,
    /// Every test metric against the initialisation at each evaluated epoch, when requested.
    pub against_init: Option<SweepResult>,
    /// The last epoch trained.
    pub last_epoch: usize,
}

/// Preallocated activations and gradients of one full-batch step.
struct TrainWorkspace {
    hidden: Array2<f32>,
    logits: Array2<f32>,
    logit_gradient: Array2<f32>,
    hidden_gradient: Array2<f32>,
    weight_gradients: [Array2<f32>; 3],
}

impl TrainWorkspace {
    fn new(model: &EmbeddingMlp, samples: usize) -> Self {
        let (operands, hidden, classes) = (model.n_operands(), model.hidden(), model.n_classes());
        TrainWorkspace {
            hidden: Array2::zeros((samples, hidden)),
            logits: Array2::zeros((samples, classes)),
            logit_gradient: Array2::zeros((samples, classes)),
            hidden_gradient: Array2::zeros((samples, hidden)),
            weight_gradients: [
                Array2::zeros((operands, hidden)),
                Array2::zeros((operands, hidden)),
                Array2::zeros((classes, hidden)),
            ],
        }
    }
}

/// Preallocated activations and log-probabilities of one test evaluation.
struct TestWorkspace {
    hidden: Array2<f32>,
    logits: Array2<f32>,
    log_probs: Array2<f64>,
}

impl TestWorkspace {
    fn new(model: &EmbeddingMlp, samples: usize) -> Self {
        TestWorkspace {
            hidden: Array2::zeros((samples, model.hidden())),
            logits: Array2::zeros((samples, model.n_classes())),
            log_probs: Array2::zeros((samples, model.n_classes())),
        }
    }
}

/// Trains `model` full-batch on `data.train` and records test metrics as it goes.
///
/// At every evaluated epoch the test log-probabilities are recorded with the core
/// [`Sweep::default`] metrics, against the reference checkpoint once it is reached (and against
/// the initialisation when `config.against_init` is set). `on_epoch` is called after each
/// evaluated epoch. The run stops at `config.max_epochs` or `config.stop_patience` epochs after
/// test accuracy first reaches `config.stop_accuracy`, whichever comes first.
///
/// # Errors
/// Returns the errors of [`GrokkingConfig::validate`], [`Error::ShapeMismatch`] when the data's
/// modulus does not match the model, the errors of [`EmbeddingMlp::check_pairs`] and
/// [`check_labels`], and [`Error::Diverged`] naming the epoch when the training loss stops being
/// finite (a learning rate far too high).
pub fn train_grokking(
    model: &mut EmbeddingMlp,
    data: &ModularDataset,
    config: &GrokkingConfig,
    mut on_epoch: impl FnMut(&EpochStats),
) -> Result<GrokkingRun> {
    config.validate()?;
    check_split(model, data.modulus, &data.train)?;
    check_split(model, data.modulus, &data.test)?;
    let (train, test) = (&data.train, &data.test);

    let mut train_workspace = TrainWorkspace::new(model, train.len());
    let mut test_workspace = TestWorkspace::new(model, test.len());
    let mut states = model
        .weights_mut()
        .map(|weight| OptimizerState::new(config.optimizer, weight.len()));
    let sweep = Sweep::default().level_name("epoch");
    let mut reference_recorder: Option<Recorder> = None;
    let mut init_recorder: Option<Recorder> = None;
    let mut history = Vec::new();
    let mut memorization_epoch = None;
    let mut reference_epoch = None;
    let mut stop_epoch = config.max_epochs;
    let mut stop_scheduled = false;
    let mut epoch = 0;

    loop {
        model.hidden_into(&train.pairs, &mut train_workspace.hidden.view_mut());
        model.logits_into(
            train_workspace.hidden.view(),
            &mut train_workspace.logits.view_mut(),
        );
        let (train_loss, correct) = cross_entropy_gradient(
            train_workspace.logits.view(),
            &train.labels,
            &mut train_workspace.logit_gradient.view_mut(),
        );
        if !train_loss.is_finite() {
            return Err(Error::Diverged {
                epoch,
                loss: train_loss,
            });
        }
        if memorization_epoch.is_none() && correct == train.len() {
            memorization_epoch = Some(epoch);
        }
        let is_reference = reference_epoch.is_none()
            && match config.reference {
                Reference::Memorization => memorization_epoch == Some(epoch),
                Reference::Epoch(reference) => reference == epoch,
            };

        let evaluate = is_reference || epoch % config.eval_every == 0 || epoch == stop_epoch;
        if evaluate {
            let log_probs = test_log_probs(model, test, &mut test_workspace)?;
            let (test_loss, test_accuracy) = loss_and_accuracy(log_probs, &test.labels);
            if is_reference {
                reference_epoch = Some(epoch);
                reference_recorder =
                    Some(sweep.recorder("training", log_probs.to_owned(), &test.labels)?);
            }
            if epoch == 0 && config.against_init {
                init_recorder = Some(sweep.recorder(
                    "training, against initialisation",
                    log_probs.to_owned(),
                    &test.labels,
                )?);
            }
            let stats = EpochStats {
                epoch,
                train_loss,
                train_accuracy: correct as f64 / train.len() as f64,
                test_loss,
                test_accuracy,
            };
            history.push(stats);
            on_epoch(&stats);
            if let Some(target) = config.stop_accuracy {
                if !stop_scheduled && test_accuracy >= target {
                    stop_scheduled = true;
                    stop_epoch = stop_epoch.min(epoch + config.stop_patience);
                }
            }
        }
        let last = epoch >= stop_epoch;

        // The metrics are computed on one thread while the next step runs on the others.
        let record = || -> Result<()> {
            if evaluate {
                for recorder in [&mut reference_recorder, &mut init_recorder]
                    .into_iter()
                    .flatten()
                {
                    recorder.record(epoch as f64, test_workspace.log_probs.view())?;
                }
            }
            Ok(())
        };
        let train_step = || {
            if last {
                Ok(())
            } else {
                step(model, &train.pairs, &mut train_workspace, &mut states)
            }
        };
        let (recorded, stepped) = rayon::join(record, train_step);
        recorded?;
        stepped?;
        if last {
            break;
        }
        epoch += 1;
    }

    Ok(GrokkingRun {
        history,
        memorization_epoch,
        reference_epoch,
        against_reference: reference_recorder.map(Recorder::finish).transpose()?,
        against_init: init_recorder.map(Recorder::finish).transpose()?,
        last_epoch: epoch,
    })
}

fn check_split(model: &EmbeddingMlp, modulus: usize, split: &ModularSplit) -> Result<()> {
    if model.n_operands() != modulus || model.n_classes() != modulus {
        return Err(Error::shape(
            "network operands and classes against the data's modulus",
            &[modulus, modulus],
            &[model.n_operands(), model.n_classes()],
        ));
    }
    model.check_pairs(&split.pairs)?;
    if split.labels.len() != split.pairs.len() {
        return Err(Error::shape(
            "labels",
            &[split.pairs.len()],
            &[split.labels.len()],
        ));
    }
    check_labels(&split.labels, model.n_classes())
}

/// Computes the `f64` test log-probabilities into the workspace, reusing its buffers.
fn test_log_probs<'w>(
    model: &EmbeddingMlp,
    test: &ModularSplit,
    workspace: &'w mut TestWorkspace,
) -> Result<ArrayView2<'w, f64>> {
    model.hidden_into(&test.pairs, &mut workspace.hidden.view_mut());
    model.logits_into(workspace.hidden.view(), &mut workspace.logits.view_mut());
    let classes = workspace.logits.ncols();
    workspace
        .logits
        .axis_chunks_iter(Axis(0), CHUNK_ROWS)
        .into_par_iter()
        .zip(
            workspace
                .log_probs
                .axis_chunks_iter_mut(Axis(0), CHUNK_ROWS),
        )
        .enumerate()
        .try_for_each(|(chunk, (logits, mut log_probs))| {
            let values = log_softmax(logits).map_err(|error| match error {
                // Report the index in the whole array, not in the chunk.
                Error::NonFinite { what, value, index } => Error::NonFinite {
                    what,
                    value,
                    index: index + chunk * CHUNK_ROWS * classes,
                },
                other => other,
            })?;
            log_probs.assign(&values);
            Ok::<(), Error>(())
        })?;
    Ok(workspace.log_probs.view())
}

/// Returns the mean cross-entropy and the accuracy (argmax, first index on ties) of `f64`
/// log-probabilities.
fn loss_and_accuracy(log_probs: ArrayView2<f64>, labels: &[usize]) -> (f64, f64) {
    let mut loss = 0.0;
    let mut correct = 0;
    for (row, &label) in log_probs.rows().into_iter().zip(labels) {
        loss -= row[label];
        let mut best = 0;
        for (index, &value) in row.iter().enumerate() {
            if value > row[best] {
                best = index;
            }
        }
        if best == label {
            correct += 1;
        }
    }
    (
        loss / labels.len() as f64,
        f64::from(correct) / labels.len() as f64,
    )
}

/// Rows per parallel chunk. The chunk size is fixed, and partial sums are added in chunk order,
/// so results do not depend on the number of threads.
const CHUNK_ROWS: usize = 256;

/// Writes the gradient of the mean cross-entropy with respect to the logits,
/// `(softmax(z) - one_hot(y)) / n`, and returns the mean loss and the number of correct argmaxes
/// (first index on ties).
///
/// The label's entry is computed as `-(sum_{k != y} e_k) / (n S)` with `e_k = exp(z_k - max z)`
/// and `S = sum_k e_k`, not as `p_y - 1`: for a confident sample `p_y` rounds to 1 in `f32`, and
/// the subtraction would zero the very gradient that keeps shaping the margins after
/// memorization. The loss `ln_1p(sum_{k != argmax} e_k) - (z_y - max z)` is accumulated in `f64`.
pub(crate) fn cross_entropy_gradient(
    logits: ArrayView2<f32>,
    labels: &[usize],
    gradient: &mut ArrayViewMut2<f32>,
) -> (f64, usize) {
    let count = labels.len() as f32;
    let partials: Vec<(f64, usize)> = logits
        .axis_chunks_iter(Axis(0), CHUNK_ROWS)
        .into_par_iter()
        .zip(gradient.axis_chunks_iter_mut(Axis(0), CHUNK_ROWS))
        .zip(labels.par_chunks(CHUNK_ROWS))
        .map(|((logits, mut gradient), labels)| {
            cross_entropy_rows(logits, labels, &mut gradient, count)
        })
        .collect();
    let (loss_sum, correct) =
        partials
            .iter()
            .fold((0.0, 0), |(loss, correct), &(chunk_loss, chunk_correct)| {
                (loss + chunk_loss, correct + chunk_correct)
            });
    (loss_sum / labels.len() as f64, correct)
}

/// Computes [`cross_entropy_gradient`] for a block of rows out of `count` samples and returns
/// the summed loss and the number of correct argmaxes.
fn cross_entropy_rows(
    logits: ArrayView2<f32>,
    labels: &[usize],
    gradient: &mut ArrayViewMut2<f32>,
    count: f32,
) -> (f64, usize) {
    let mut loss_sum = 0.0f64;
    let mut correct = 0;
    for ((row, mut out), &label) in logits
        .axis_iter(Axis(0))
        .zip(gradient.axis_iter_mut(Axis(0)))
        .zip(labels)
    {
        let mut max_index = 0;
        for (index, &value) in row.iter().enumerate() {
            if value > row[max_index] {
                max_index = index;
            }
        }
        if max_index == label {
            correct += 1;
        }
        let max = row[max_index];
        // `rest` leaves out the maximum (whose term is exactly 1), `others` leaves out the label.
        let (mut rest, mut others) = (0.0f32, 0.0f32);
        for (index, (target, &value)) in out.iter_mut().zip(row.iter()).enumerate() {
            let term = (value - max).exp();
            *target = term;
            if index != max_index {
                rest += term;
            }
            if index != label {
                others += term;
            }
        }
        let normaliser = 1.0 + rest;
        loss_sum += f64::from(rest).ln_1p() - f64::from(row[label] - max);
        let scale = 1.0 / (count * normaliser);
        out.mapv_inplace(|term| term * scale);
        out[label] = -others * scale;
    }
    (loss_sum, correct)
}

/// Backpropagates the logit gradient in the workspace and applies one optimizer step to each
/// weight tensor. The gradients are all computed before any weight changes.
fn step(
    model: &mut EmbeddingMlp,
    pairs: &[[usize; 2]],
    workspace: &mut TrainWorkspace,
    states: &mut [OptimizerState; 3],
) -> Result<()> {
    let TrainWorkspace {
        hidden: train_hidden,
        logit_gradient,
        hidden_gradient,
        weight_gradients,
        ..
    } = workspace;
    let [embedding_a_gradient, embedding_b_gradient, output_gradient] = weight_gradients;

    // dW2 = dZ^T H and dH = dZ W2, with dZ of shape (n, classes).
    general_mat_mul(
        1.0,
        &logit_gradient.t(),
        &train_hidden.view(),
        0.0,
        output_gradient,
    );
    general_mat_mul(
        1.0,
        &logit_gradient.view(),
        model.output(),
        0.0,
        hidden_gradient,
    );
    let width = hidden_gradient.ncols();
    // ReLU passes gradient only where its output was positive. The select compiles without a
    // branch, which matters because the sign pattern is random and mispredicts half the time.
    let activations = train_hidden
        .as_slice()
        .expect("the workspace is in standard layout");
    let gradients = hidden_gradient
        .as_slice_mut()
        .expect("the workspace is in standard layout");
    for (gradient, &activation) in gradients.iter_mut().zip(activations) {
        *gradient = if activation > 0.0 { *gradient } else { 0.0 };
    }
    // The embedding gradient is a scatter-add of the hidden gradient rows.
    embedding_a_gradient.fill(0.0);
    embedding_b_gradient.fill(0.0);
    let rows_a = embedding_a_gradient
        .as_slice_mut()
        .expect("gradients are allocated in standard layout");
    let rows_b = embedding_b_gradient
        .as_slice_mut()
        .expect("gradients are allocated in standard layout");
    for (&[a, b], row) in pairs.iter().zip(gradients.chunks_exact(width)) {
        let target = &mut rows_a[a * width..(a + 1) * width];
        target
            .iter_mut()
            .zip(row)
            .for_each(|(sum, &value)| *sum += value);
        let target = &mut rows_b[b * width..(b + 1) * width];
        target
            .iter_mut()
            .zip(row)
            .for_each(|(sum, &value)| *sum += value);
    }

    for ((weight, gradient), state) in model
        .weights_mut()
        .into_iter()
        .zip(weight_gradients.iter())
        .zip(states.iter_mut())
    {
        state.step(
            weight
                .as_slice_mut()
                .expect("weights are stored in standard layout"),
            gradient
                .as_slice()
                .expect("gradients are allocated in standard layout"),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;
    use ndarray::array;

    #[test]
    fn gradient_keeps_confident_label_term() {
        // e^-20 is below f32's resolution at 1, so p_y - 1 would be exactly 0.
        let logits = array![[20.0f32, 0.0, 0.0]];
        let mut gradient = Array2::zeros((1, 3));
        let (loss, correct) = cross_entropy_gradient(logits.view(), &[0], &mut gradient.view_mut());
        assert_eq!(correct, 1);
        let tail = (-20.0f64).exp();
        assert_relative_eq!(
            f64::from(gradient[[0, 0]]),
            -2.0 * tail,
            max_relative = 1e-5
        );
        assert_relative_eq!(f64::from(gradient[[0, 1]]), tail, max_relative = 1e-5);
        assert_relative_eq!(loss, (2.0 * tail).ln_1p(), max_relative = 1e-5);
    }

    #[test]
    fn gradient_rows_sum_to_zero() {
        let logits = array![[0.5f32, -1.0, 2.0], [3.0, 3.0, -4.0]];
        let mut gradient = Array2::zeros((2, 3));
        let (loss, correct) =
            cross_entropy_gradient(logits.view(), &[1, 0], &mut gradient.view_mut());
        // Row 2 ties between classes 0 and 1; the first index wins and matches label 0.
        assert_eq!(correct, 1);
        for row in gradient.rows() {
            assert_relative_eq!(row.sum(), 0.0, epsilon = 1e-7);
        }
        let expected = log_softmax(logits.view()).unwrap();
        assert_relative_eq!(
            loss,
            -(expected[[0, 1]] + expected[[1, 0]]) / 2.0,
            epsilon = 1e-6
        );
    }

    #[test]
    fn training_rejects_model_of_other_modulus() {
        use crate::grokking::{ModularDataset, Operation};
        use ndarray_rand::rand::rngs::StdRng;
        use ndarray_rand::rand::SeedableRng;
        let mut rng = StdRng::seed_from_u64(0);
        let data = ModularDataset::new(7, Operation::Add, 0.5, &mut rng).unwrap();
        for modulus in [5, 9] {
            let mut model = EmbeddingMlp::init(modulus, 8, &mut rng).unwrap();
            let config = GrokkingConfig {
                max_epochs: 2,
                ..GrokkingConfig::default()
            };
            let error = train_grokking(&mut model, &data, &config, |_| {}).unwrap_err();
            assert!(matches!(error, Error::ShapeMismatch { .. }), "{error}");
        }
    }

    #[test]
    fn config_rejects_bad_settings() {
        let config = GrokkingConfig::default();
        assert!(config.validate().is_ok());
        for bad in [
            GrokkingConfig {
                eval_every: 0,
                ..config
            },
            GrokkingConfig {
                max_epochs: 0,
                ..config
            },
            GrokkingConfig {
                reference: Reference::Epoch(3001),
                ..config
            },
            GrokkingConfig {
                stop_accuracy: Some(1.5),
                ..config
            },
        ] {
            assert!(
                matches!(bad.validate(), Err(Error::InvalidParameter { .. })),
                "{bad:?}"
            );
        }
    }
}
