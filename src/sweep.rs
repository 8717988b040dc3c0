//! Sweeps: evaluate a model at a series of perturbation levels and record every metric.
//!
//! A [`Sweep`] computes the reference log-probabilities once and then, for each level, the
//! perturbed log-probabilities and every metric, in the order the levels are given. The models
//! can come from a [`Perturbation`] ([`Sweep::run`]), from any sequence of `(level, model)` pairs
//! such as training checkpoints ([`Sweep::run_models`]), or be pushed one at a time through a
//! [`Recorder`] when they are produced inside a loop the caller owns.

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;
use serde::Serialize;

use crate::crossover::{Crossovers, Thresholds};
use crate::error::{Error, Result};
use crate::metric::{accuracy, check_labels, standard_metrics, Evaluation, Metric, ReferenceCache};
use crate::model::{argmax_rows, Model};
use crate::perturb::Perturbation;

/// Returns the default pruning grid: 0, 0.05, ..., 0.95 followed by 0.96, 0.97, 0.98, 0.99
/// (24 levels).
pub fn default_pruning_levels() -> Vec<f64> {
    (0..20)
        .map(|step| f64::from(step) * 0.05)
        .chain([0.96, 0.97, 0.98, 0.99])
        .map(|level| (level * 100.0).round() / 100.0)
        .collect()
}

/// Metric values at one level.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepRow {
    /// The perturbation level.
    pub level: f64,
    /// One value per metric, in the order of [`SweepResult::metric_names`].
    pub values: Vec<f64>,
}

/// Every metric at every level of one sweep.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepResult {
    /// Name of the perturbation, for reports.
    pub perturbation: String,
    /// Name of the level column, for example `strength` or `epoch`.
    pub level_name: String,
    /// Metric names, the columns of every row.
    pub metric_names: Vec<String>,
    /// One row per level, in sweep order.
    pub rows: Vec<SweepRow>,
    /// Accuracy of the reference model on the evaluation set.
    pub reference_accuracy: f64,
    /// Number of evaluated samples.
    pub n_samples: usize,
}

impl SweepResult {
    /// Returns the levels in sweep order.
    pub fn levels(&self) -> Vec<f64> {
        self.rows.iter().map(|row| row.level).collect()
    }

    /// Returns one metric's values in sweep order.
    ///
    /// # Errors
    /// Returns [`Error::UnknownMetric`] when no metric has that name.
    pub fn column(&self, name: &str) -> Result<Vec<f64>> {
        let index = self
            .metric_names
            .iter()
            .position(|metric| metric == name)
            .ok_or_else(|| Error::UnknownMetric {
                name: name.to_string(),
                available: self.metric_names.join(", "),
            })?;
        Ok(self.rows.iter().map(|row| row.values[index]).collect())
    }

    /// Averages sweeps that share their levels and metrics, such as one sweep per noise seed,
    /// into one sweep named `name`.
    ///
    /// Every value, and the reference accuracy, is the arithmetic mean over the sweeps. For a
    /// metric that is not linear in the per-sample values, such as `samples_to_detect`, this is
    /// the mean of the metric and not the metric of the mean.
    ///
    /// # Errors
    /// Returns [`Error::Empty`] for no sweeps and [`Error::InvalidParameter`] naming the first
    /// sweep whose levels, metric names or sample count differ from the first sweep's.
    pub fn mean(name: impl Into<String>, sweeps: &[SweepResult]) -> Result<SweepResult> {
        let Some(first) = sweeps.first() else {
            return Err(Error::Empty("list of sweeps to average"));
        };
        for (index, sweep) in sweeps.iter().enumerate().skip(1) {
            if sweep.levels() != first.levels()
                || sweep.metric_names != first.metric_names
                || sweep.n_samples != first.n_samples
            {
                return Err(Error::invalid_parameter(
                    "sweep to average",
                    format!("#{index} ({})", sweep.perturbation),
                    "the same levels, metrics and sample count as the first sweep",
                ));
            }
        }
        let count = sweeps.len() as f64;
        let rows = first
            .rows
            .iter()
            .enumerate()
            .map(|(row_index, row)| SweepRow {
                level: row.level,
                values: (0..row.values.len())
                    .map(|column| {
                        sweeps
                            .iter()
                            .map(|sweep| sweep.rows[row_index].values[column])
                            .sum::<f64>()
                            / count
                    })
                    .collect(),
            })
            .collect();
        Ok(SweepResult {
            perturbation: name.into(),
            level_name: first.level_name.clone(),
            metric_names: first.metric_names.clone(),
            rows,
            reference_accuracy: sweeps
                .iter()
                .map(|sweep| sweep.reference_accuracy)
                .sum::<f64>()
                / count,
            n_samples: first.n_samples,
        })
    }

    /// Finds the accuracy, per-sample LLR and population LLR crossovers.
    ///
    /// # Errors
    /// Returns [`Error::UnknownMetric`] when the sweep did not record `accuracy`, `mean_llr` and
    /// `total_llr`, and the errors of [`Crossovers::find`].
    pub fn crossovers(&self, thresholds: &Thresholds) -> Result<Crossovers> {
        Crossovers::find(
            &self.levels(),
            self.reference_accuracy,
            &self.column("accuracy")?,
            &self.column("mean_llr")?,
            &self.column("total_llr")?,
            thresholds,
        )
    }
}

/// Records metric rows for models evaluated one at a time against a fixed reference.
pub struct Recorder<'a> {
    result: SweepResult,
    reference: Array2<f64>,
    cache: ReferenceCache,
    labels: &'a [usize],
    metrics: &'a [Box<dyn Metric + Send + Sync>],
}

impl<'a> Recorder<'a> {
    /// Evaluates every metric on `perturbed` log-probabilities and appends the row.
    ///
    /// # Errors
    /// Returns [`Error::NonFinite`] for a non-finite level, the errors of [`Evaluation::new`]
    /// (for example a shape that differs from the reference) and those of the metrics.
    pub fn record(&mut self, level: f64, perturbed: ArrayView2<f64>) -> Result<&SweepRow> {
        let values = self.compute_row(self.result.rows.len(), level, perturbed)?;
        self.result.rows.push(SweepRow { level, values });
        Ok(self.result.rows.last().expect("a row was just pushed"))
    }

    /// Evaluates every metric at several levels in parallel on rayon's pool, then appends the
    /// rows in the order of `levels` and calls `on_level` after each, as repeated
    /// [`Recorder::record`] calls would.
    ///
    /// # Errors
    /// Returns the first error in level order, after appending the rows before it.
    pub(crate) fn record_all(
        &mut self,
        levels: &[(f64, ArrayView2<f64>)],
        mut on_level: impl FnMut(&SweepRow),
    ) -> Result<()> {
        let first_index = self.result.rows.len();
        let rows: Vec<Result<Vec<f64>>> = levels
            .par_iter()
            .enumerate()
            .map(|(offset, &(level, perturbed))| {
                self.compute_row(first_index + offset, level, perturbed)
            })
            .collect();
        for (&(level, _), values) in levels.iter().zip(rows) {
            self.result.rows.push(SweepRow {
                level,
                values: values?,
            });
            on_level(self.result.rows.last().expect("a row was just pushed"));
        }
        Ok(())
    }

    /// Evaluates every metric for the row at position `index`.
    fn compute_row(
        &self,
        index: usize,
        level: f64,
        perturbed: ArrayView2<f64>,
    ) -> Result<Vec<f64>> {
        if !level.is_finite() {
            return Err(Error::NonFinite {
                what: "sweep level",
                value: level,
                index,
            });
        }
        // Sweep::recorder checked the reference and the labels.
        let evaluation =
            Evaluation::with_checked_reference(self.reference.view(), perturbed, self.labels)?
                .with_cache(&self.cache)?;
        let predictions = argmax_rows(evaluation.perturbed());
        let evaluation = evaluation.with_perturbed_predictions(&predictions)?;
        self.metrics
            .iter()
            .map(|metric| metric.compute(&evaluation))
            .collect()
    }

    /// Returns the reference log-probabilities.
    pub fn reference(&self) -> ArrayView2<'_, f64> {
        self.reference.view()
    }

    /// Returns the rows recorded so far.
    pub fn result(&self) -> &SweepResult {
        &self.result
    }

    /// Ends recording and returns the sweep.
    ///
    /// # Errors
    /// Returns [`Error::Empty`] when no row was recorded.
    pub fn finish(self) -> Result<SweepResult> {
        if self.result.rows.is_empty() {
            return Err(Error::Empty("sweep (no level was recorded)"));
        }
        Ok(self.result)
    }
}

/// A set of metrics to record at every level; see the module docs.
pub struct Sweep {
    metrics: Vec<Box<dyn Metric + Send + Sync>>,
    level_name: String,
}

impl Default for Sweep {
    /// Records [`standard_metrics`] with levels named `strength`.
    fn default() -> Self {
        Sweep {
            metrics: standard_metrics(),
            level_name: "strength".into(),
        }
    }
}

impl Sweep {
    /// Creates a sweep that records the given metrics. Crossover detection needs `accuracy`,
    /// `mean_llr` and `total_llr` among them.
    pub fn with_metrics(metrics: Vec<Box<dyn Metric + Send + Sync>>) -> Self {
        Sweep {
            metrics,
            ..Sweep::default()
        }
    }

    /// Sets the name of the level column, for example `epoch` or `bits`.
    pub fn level_name(mut self, name: impl Into<String>) -> Self {
        self.level_name = name.into();
        self
    }

    /// Starts recording against reference log-probabilities on a labelled set.
    ///
    /// # Errors
    /// Returns [`Error::Empty`] for an empty set, [`Error::ShapeMismatch`] when the label count
    /// differs from the row count, and [`Error::LabelOutOfRange`] for a bad label.
    pub fn recorder<'a>(
        &'a self,
        perturbation: impl Into<String>,
        reference: Array2<f64>,
        labels: &'a [usize],
    ) -> Result<Recorder<'a>> {
        // Validates shapes, labels and NaN once, up front.
        let evaluation = Evaluation::new(reference.view(), reference.view(), labels)?;
        let reference_accuracy = accuracy(&evaluation);
        let cache = ReferenceCache::new(reference.view());
        Ok(Recorder {
            result: SweepResult {
                perturbation: perturbation.into(),
                level_name: self.level_name.clone(),
                metric_names: self.metrics.iter().map(|metric| metric.name()).collect(),
                rows: Vec::new(),
                reference_accuracy,
                n_samples: labels.len(),
            },
            reference,
            cache,
            labels,
            metrics: &self.metrics,
        })
    }

    /// Applies `perturbation` to `reference` at every level, in order, and records every metric.
    ///
    /// Every level is checked with [`Perturbation::check_level`] and the labels against the
    /// model's class count before anything is evaluated. `on_level` is called after each row.
    ///
    /// # Errors
    /// Returns [`Error::Empty`] for no levels, the errors of the level check, the model, the
    /// perturbation and [`Recorder::record`].
    pub fn run<M, P>(
        &self,
        reference: &M,
        perturbation: &P,
        levels: &[f64],
        inputs: &M::Input,
        labels: &[usize],
        mut on_level: impl FnMut(&SweepRow),
    ) -> Result<SweepResult>
    where
        M: Model,
        P: Perturbation<M> + ?Sized,
    {
        if levels.is_empty() {
            return Err(Error::Empty("list of sweep levels"));
        }
        for &level in levels {
            perturbation.check_level(level)?;
        }
        check_labels(labels, reference.n_classes())?;
        let mut recorder =
            self.recorder(perturbation.name(), reference.log_probs(inputs)?, labels)?;
        for &level in levels {
            let perturbed = perturbation.apply(reference, level)?;
            let row = recorder.record(level, perturbed.log_probs(inputs)?.view())?;
            on_level(row);
        }
        recorder.finish()
    }

    /// Evaluates a sequence of `(level, model)` pairs against `reference`, for models that no
    /// [`Perturbation`] produced, such as training checkpoints. Models are evaluated and dropped
    /// one at a time, so the sequence may be produced lazily.
    ///
    /// # Errors
    /// Returns the first error of the sequence, the model or [`Recorder::record`], and
    /// [`Error::Empty`] for an empty sequence.
    pub fn run_models<M, I>(
        &self,
        name: impl Into<String>,
        reference: &M,
        models: I,
        inputs: &M::Input,
        labels: &[usize],
        mut on_level: impl FnMut(&SweepRow),
    ) -> Result<SweepResult>
    where
        M: Model,
        I: IntoIterator<Item = Result<(f64, M)>>,
    {
        check_labels(labels, reference.n_classes())?;
        let mut recorder = self.recorder(name, reference.log_probs(inputs)?, labels)?;
        for item in models {
            let (level, model) = item?;
            let row = recorder.record(level, model.log_probs(inputs)?.view())?;
            on_level(row);
        }
        recorder.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mlp::Mlp;
    use crate::perturb::GlobalMagnitudePruning;
    use ndarray_rand::rand::rngs::StdRng;
    use ndarray_rand::rand::{Rng, SeedableRng};

    fn fixture() -> (Mlp, Array2<f32>, Vec<usize>) {
        let mut rng = StdRng::seed_from_u64(9);
        let network = Mlp::init(&[8, 6, 3], &mut rng).unwrap();
        let inputs = Array2::from_shape_fn((40, 8), |_| rng.random_range(-1.0f32..1.0));
        let labels = network.predict(&inputs).unwrap();
        (network, inputs, labels)
    }

    #[test]
    fn default_levels_are_the_pruning_grid() {
        let levels = default_pruning_levels();
        assert_eq!(levels.len(), 24);
        assert_eq!(levels[0], 0.0);
        assert_eq!(levels[15], 0.75);
        assert_eq!(&levels[19..], &[0.95, 0.96, 0.97, 0.98, 0.99]);
    }

    #[test]
    fn sweep_rejects_nan_input() {
        let (network, mut inputs, labels) = fixture();
        inputs[[3, 5]] = f32::NAN;
        let error = Sweep::default()
            .run(
                &network,
                &GlobalMagnitudePruning::default(),
                &[0.0, 0.5],
                &inputs,
                &labels,
                |_| {},
            )
            .unwrap_err();
        assert!(
            matches!(
                error,
                Error::NonFinite {
                    what: "input",
                    index: 29,
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn sweep_level_zero_matches_reference() {
        let (network, inputs, labels) = fixture();
        let result = Sweep::default()
            .run(
                &network,
                &GlobalMagnitudePruning::default(),
                &[0.0, 0.5, 1.0],
                &inputs,
                &labels,
                |_| {},
            )
            .unwrap();
        assert_eq!(result.rows.len(), 3);
        assert_eq!(result.reference_accuracy, 1.0);
        assert_eq!(result.column("accuracy").unwrap()[0], 1.0);
        assert_eq!(result.column("mean_llr").unwrap()[0], 0.0);
        assert_eq!(result.column("mean_kl").unwrap()[0], 0.0);
        assert_eq!(result.column("flip_rate").unwrap()[0], 0.0);
        assert!(result.column("mean_kl").unwrap()[2] > 0.0);
    }

    #[test]
    fn sweep_checks_levels_before_running() {
        let (network, inputs, labels) = fixture();
        let mut evaluated = 0;
        let error = Sweep::default()
            .run(
                &network,
                &GlobalMagnitudePruning::default(),
                &[0.0, 0.5, 1.5],
                &inputs,
                &labels,
                |_| evaluated += 1,
            )
            .unwrap_err();
        assert!(matches!(error, Error::InvalidParameter { .. }));
        assert_eq!(evaluated, 0);
    }

    #[test]
    fn sweep_rejects_labels_out_of_range() {
        let (network, inputs, mut labels) = fixture();
        labels[3] = 7;
        let error = Sweep::default()
            .run(
                &network,
                &GlobalMagnitudePruning::default(),
                &[0.0],
                &inputs,
                &labels,
                |_| {},
            )
            .unwrap_err();
        assert!(matches!(
            error,
            Error::LabelOutOfRange {
                label: 7,
                index: 3,
                ..
            }
        ));
    }

    #[test]
    fn run_models_accepts_checkpoints() {
        let (network, inputs, labels) = fixture();
        let checkpoints = (0..3).map(|epoch| {
            let mut model = network.clone();
            model.layers_mut()[1].bias_mut()[0] += epoch as f32;
            Ok((epoch as f64 * 100.0, model))
        });
        let result = Sweep::default()
            .level_name("epoch")
            .run_models("training", &network, checkpoints, &inputs, &labels, |_| {})
            .unwrap();
        assert_eq!(result.levels(), vec![0.0, 100.0, 200.0]);
        assert_eq!(result.level_name, "epoch");
        let mean_llr = result.column("mean_llr").unwrap();
        assert_eq!(mean_llr[0], 0.0);
        assert!(mean_llr[2] != 0.0);
    }

    #[test]
    fn mean_averages_every_column() {
        let (network, inputs, labels) = fixture();
        let sweep = Sweep::default();
        let levels = [0.0, 0.5, 0.9];
        let runs: Vec<SweepResult> = [3, 4]
            .into_iter()
            .map(|seed| {
                sweep
                    .run(
                        &network,
                        &crate::perturb::RandomPruning { seed },
                        &levels,
                        &inputs,
                        &labels,
                        |_| {},
                    )
                    .unwrap()
            })
            .collect();
        let mean = SweepResult::mean("random pruning (mean)", &runs).unwrap();
        assert_eq!(mean.perturbation, "random pruning (mean)");
        assert_eq!(mean.levels(), levels.to_vec());
        for name in ["accuracy", "mean_llr", "total_llr"] {
            let first = runs[0].column(name).unwrap();
            let second = runs[1].column(name).unwrap();
            for (index, value) in mean.column(name).unwrap().into_iter().enumerate() {
                assert_eq!(value, (first[index] + second[index]) / 2.0);
            }
        }
    }

    #[test]
    fn mean_rejects_different_levels() {
        let (network, inputs, labels) = fixture();
        let run = |levels: &[f64]| {
            Sweep::default()
                .run(
                    &network,
                    &GlobalMagnitudePruning::default(),
                    levels,
                    &inputs,
                    &labels,
                    |_| {},
                )
                .unwrap()
        };
        let error = SweepResult::mean("mean", &[run(&[0.0, 0.5]), run(&[0.0, 0.6])]).unwrap_err();
        assert!(error.to_string().contains("#1"), "{error}");
        assert!(matches!(
            SweepResult::mean("mean", &[]),
            Err(Error::Empty(_))
        ));
    }

    #[test]
    fn column_reports_unknown_metric() {
        let (network, inputs, labels) = fixture();
        let result = Sweep::default()
            .run(
                &network,
                &GlobalMagnitudePruning::default(),
                &[0.0],
                &inputs,
                &labels,
                |_| {},
            )
            .unwrap();
        let error = result.column("f1").unwrap_err();
        assert!(error.to_string().contains("mean_llr"));
    }

    #[test]
    fn recorder_rejects_shape_change() {
        let sweep = Sweep::default();
        let labels = [0, 1];
        let mut recorder = sweep
            .recorder("manual", Array2::from_elem((2, 2), -(2f64.ln())), &labels)
            .unwrap();
        let wrong = Array2::from_elem((2, 3), -(3f64.ln()));
        assert!(matches!(
            recorder.record(1.0, wrong.view()),
            Err(Error::ShapeMismatch { .. })
        ));
        assert!(matches!(recorder.finish(), Err(Error::Empty(_))));
    }
}
