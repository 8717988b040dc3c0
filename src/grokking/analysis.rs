//! Analysis of a grokking run: the memorization and grokking epochs, and the epoch at which each
//! measure crossed its threshold relative to the reference checkpoint.
//!
//! Right after memorization the mean LLR against the memorization checkpoint first turns
//! negative, because the model grows more confidently wrong on the test set, and only later
//! climbs as the test predictions improve. So besides the two-sided per-sample crossover
//! (`|mean LLR| > t`) the analysis reports the signed crossings `mean LLR > +t` and
//! `mean LLR < -t` separately, and the crossing of `mean KL(reference || current) > t`.

use serde::Serialize;

use super::train::{EpochStats, GrokkingRun};
use crate::crossover::{find_crossing, AccuracyRule, Crossing, Crossovers, Threshold, Thresholds};
use crate::error::{Error, Result};
use crate::sweep::SweepResult;

/// Returns the default thresholds with [`AccuracyRule::Change`]: test accuracy moving more than
/// one percentage point either way, `|mean LLR| > 1` nat and `|total LLR| > 3` nats.
pub fn grokking_thresholds() -> Thresholds {
    Thresholds {
        accuracy_rule: AccuracyRule::Change,
        ..Thresholds::default()
    }
}

/// Returns the first evaluated epoch with 100% training accuracy.
pub fn memorization_epoch(history: &[EpochStats]) -> Option<usize> {
    history
        .iter()
        .find(|stats| stats.train_accuracy >= 1.0)
        .map(|stats| stats.epoch)
}

/// Returns the first evaluated epoch whose test accuracy is at or above `accuracy` (a fraction).
pub fn grokking_epoch(history: &[EpochStats], accuracy: f64) -> Option<usize> {
    history
        .iter()
        .find(|stats| stats.test_accuracy >= accuracy)
        .map(|stats| stats.epoch)
}

/// The crossings of one sweep over training epochs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GrokkingCrossovers {
    /// The core crossovers: accuracy (by the thresholds' rule), `|mean LLR|`, `|total LLR|`, and
    /// their direction.
    pub core: Crossovers,
    /// First epoch with `mean LLR > +t`, with `t` the per-sample threshold.
    pub llr_positive: Crossing,
    /// First epoch with `mean LLR < -t`.
    pub llr_negative: Crossing,
    /// First epoch with `mean KL(reference || current) > t`, with the per-sample threshold `t`
    /// in nats.
    pub kl: Crossing,
}

/// How many epochs each information crossing comes before the behavioral one:
/// `accuracy epoch - information epoch`. Positive means information first; `None` when either
/// crossing is missing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Leads {
    /// Lead of `|mean LLR| > t`.
    pub per_sample_llr: Option<f64>,
    /// Lead of `mean LLR > +t`.
    pub llr_positive: Option<f64>,
    /// Lead of `mean LLR < -t`.
    pub llr_negative: Option<f64>,
    /// Lead of `mean KL > t`.
    pub kl: Option<f64>,
    /// Lead of `|total LLR| > population threshold`.
    pub population_llr: Option<f64>,
}

impl GrokkingCrossovers {
    /// Finds every crossing in a sweep whose levels are epochs.
    ///
    /// # Errors
    /// Returns [`Error::UnknownMetric`] when the sweep lacks `accuracy`, `mean_llr`, `total_llr`
    /// or `mean_kl`, and the errors of [`Crossovers::find`] and [`find_crossing`].
    pub fn find(sweep: &SweepResult, thresholds: &Thresholds) -> Result<Self> {
        let core = sweep.crossovers(thresholds)?;
        let levels = sweep.levels();
        let mean_llr = sweep.column("mean_llr")?;
        let threshold = thresholds.per_sample_llr;
        Ok(GrokkingCrossovers {
            core,
            llr_positive: find_crossing(&levels, &mean_llr, &Threshold::above(threshold))?,
            llr_negative: find_crossing(&levels, &mean_llr, &Threshold::below(-threshold))?,
            kl: find_crossing(
                &levels,
                &sweep.column("mean_kl")?,
                &Threshold::above(threshold),
            )?,
        })
    }

    /// Returns the lead of every information crossing over the accuracy crossing.
    pub fn leads(&self) -> Leads {
        let behavior = self.core.accuracy.first;
        let lead = |information: &Crossing| Some(behavior? - information.first?);
        Leads {
            per_sample_llr: lead(&self.core.per_sample_llr),
            llr_positive: lead(&self.llr_positive),
            llr_negative: lead(&self.llr_negative),
            kl: lead(&self.kl),
            population_llr: lead(&self.core.population_llr),
        }
    }
}

/// The summary of a grokking run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GrokkingAnalysis {
    /// The first epoch with 100% training accuracy.
    pub memorization_epoch: Option<usize>,
    /// The epoch of the reference checkpoint.
    pub reference_epoch: Option<usize>,
    /// The first epoch with test accuracy at or above [`GrokkingAnalysis::grokking_accuracy`].
    pub grokking_epoch: Option<usize>,
    /// The test accuracy that counts as generalized, a fraction.
    pub grokking_accuracy: f64,
    /// Test accuracy at the last evaluated epoch.
    pub final_test_accuracy: f64,
    /// Crossings against the reference; `None` when the reference was never reached.
    pub crossovers: Option<GrokkingCrossovers>,
    /// Crossings against the initialisation, when they were recorded.
    pub crossovers_against_init: Option<GrokkingCrossovers>,
}

impl GrokkingAnalysis {
    /// Returns the leads against the reference, when the reference was reached.
    pub fn leads(&self) -> Option<Leads> {
        self.crossovers.as_ref().map(GrokkingCrossovers::leads)
    }
}

/// Analyses a run: memorization and grokking epochs and every crossing.
///
/// `grokking_accuracy` is the test accuracy (a fraction) that counts as generalized, for example
/// 0.9. Pass [`grokking_thresholds`] for the behavioral crossover as a change of
/// test accuracy in either direction.
///
/// # Errors
/// Returns [`Error::Empty`] for a run without history, [`Error::InvalidParameter`] for a
/// `grokking_accuracy` outside `(0, 1]`, and the errors of [`GrokkingCrossovers::find`].
pub fn analyze(
    run: &GrokkingRun,
    thresholds: &Thresholds,
    grokking_accuracy: f64,
) -> Result<GrokkingAnalysis> {
    if !(grokking_accuracy > 0.0 && grokking_accuracy <= 1.0) {
        return Err(Error::invalid_parameter(
            "grokking accuracy",
            grokking_accuracy,
            "a fraction in (0, 1], for example 0.9",
        ));
    }
    let last = run.history.last().ok_or(Error::Empty("training history"))?;
    let find = |sweep: &Option<SweepResult>| {
        sweep
            .as_ref()
            .map(|sweep| GrokkingCrossovers::find(sweep, thresholds))
            .transpose()
    };
    Ok(GrokkingAnalysis {
        memorization_epoch: run.memorization_epoch,
        reference_epoch: run.reference_epoch,
        grokking_epoch: grokking_epoch(&run.history, grokking_accuracy),
        grokking_accuracy,
        final_test_accuracy: last.test_accuracy,
        crossovers: find(&run.against_reference)?,
        crossovers_against_init: find(&run.against_init)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crossover::Direction;
    use crate::sweep::SweepRow;

    fn sweep(levels: &[f64], accuracy: &[f64], mean_llr: &[f64], mean_kl: &[f64]) -> SweepResult {
        SweepResult {
            perturbation: "synthetic".into(),
            level_name: "epoch".into(),
            metric_names: ["accuracy", "mean_llr", "total_llr", "mean_kl"]
                .map(String::from)
                .to_vec(),
            rows: levels
                .iter()
                .enumerate()
                .map(|(index, &level)| SweepRow {
                    level,
                    values: vec![
                        accuracy[index],
                        mean_llr[index],
                        100.0 * mean_llr[index],
                        mean_kl[index],
                    ],
                })
                .collect(),
            reference_accuracy: accuracy[0],
            n_samples: 100,
        }
    }

    #[test]
    fn signed_crossings_split_dip_and_climb() {
        let levels = [50.0, 60.0, 70.0, 80.0, 90.0, 100.0];
        let accuracy = [0.02, 0.025, 0.02, 0.02, 0.5, 0.99];
        let mean_llr = [0.0, -0.5, -1.5, 0.2, 2.0, 5.0];
        let mean_kl = [0.0, 0.3, 1.2, 1.5, 2.5, 4.0];
        let crossings = GrokkingCrossovers::find(
            &sweep(&levels, &accuracy, &mean_llr, &mean_kl),
            &grokking_thresholds(),
        )
        .unwrap();
        assert_eq!(crossings.core.accuracy.first, Some(90.0));
        assert_eq!(crossings.core.per_sample_llr.first, Some(70.0));
        assert_eq!(crossings.llr_negative.first, Some(70.0));
        assert_eq!(crossings.llr_positive.first, Some(90.0));
        assert_eq!(crossings.kl.first, Some(70.0));
        assert_eq!(crossings.core.direction, Direction::InformationFirst);
        let leads = crossings.leads();
        assert_eq!(leads.per_sample_llr, Some(20.0));
        assert_eq!(leads.llr_positive, Some(0.0));
        assert_eq!(leads.kl, Some(20.0));
        // |total| = 100 |mean| crosses 3 nats at 60.
        assert_eq!(leads.population_llr, Some(30.0));
    }

    #[test]
    fn change_rule_catches_a_rise() {
        let levels = [0.0, 1.0, 2.0];
        let crossings = GrokkingCrossovers::find(
            &sweep(&levels, &[0.5, 0.505, 0.52], &[0.0; 3], &[0.0; 3]),
            &grokking_thresholds(),
        )
        .unwrap();
        assert_eq!(crossings.core.accuracy.first, Some(2.0));
        assert_eq!(crossings.core.direction, Direction::BehaviorOnly);
        assert_eq!(crossings.leads().per_sample_llr, None);
    }

    #[test]
    fn epochs_come_from_history() {
        let stats = |epoch, train_accuracy, test_accuracy| EpochStats {
            epoch,
            train_loss: 1.0,
            train_accuracy,
            test_loss: 1.0,
            test_accuracy,
        };
        let history = [
            stats(0, 0.1, 0.01),
            stats(5, 1.0, 0.02),
            stats(10, 0.99, 0.95),
            stats(15, 1.0, 0.99),
        ];
        assert_eq!(memorization_epoch(&history), Some(5));
        assert_eq!(grokking_epoch(&history, 0.9), Some(10));
        assert_eq!(grokking_epoch(&history, 0.995), None);
    }
}
