//! Crossover detection: the first level at which a measured series crosses its threshold, and the
//! order in which behavior and information cross.
//!
//! Levels are taken in the order given, which is the order of the sweep: increasing pruning
//! fractions, decreasing bit widths, or training epochs. "First" always means first in that order.

use serde::Serialize;

use crate::error::{Error, Result};

/// The side of a threshold that counts as crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// `value > threshold`.
    Above,
    /// `value < threshold`.
    Below,
    /// `|value| > threshold`, for series that may cross with either sign.
    Outside,
}

/// A threshold and the side of it that counts as crossed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Threshold {
    /// The boundary value.
    pub value: f64,
    /// The side of `value` that counts as crossed.
    pub side: Side,
}

impl Threshold {
    /// Creates a threshold crossed when `value > threshold`.
    pub fn above(threshold: f64) -> Self {
        Threshold {
            value: threshold,
            side: Side::Above,
        }
    }

    /// Creates a threshold crossed when `value < threshold`.
    pub fn below(threshold: f64) -> Self {
        Threshold {
            value: threshold,
            side: Side::Below,
        }
    }

    /// Creates a threshold crossed when `|value| > threshold`.
    pub fn outside(threshold: f64) -> Self {
        Threshold {
            value: threshold,
            side: Side::Outside,
        }
    }

    /// Returns how far `value` lies beyond the threshold: positive when crossed, zero or negative
    /// when not.
    pub fn margin(&self, value: f64) -> f64 {
        match self.side {
            Side::Above => value - self.value,
            Side::Below => self.value - value,
            Side::Outside => value.abs() - self.value,
        }
    }

    /// Returns whether `value` lies strictly beyond the threshold.
    pub fn is_crossed(&self, value: f64) -> bool {
        self.margin(value) > 0.0
    }

    fn validate(&self, name: &'static str) -> Result<()> {
        let valid = self.value.is_finite() && (self.side != Side::Outside || self.value >= 0.0);
        if valid {
            Ok(())
        } else {
            Err(Error::invalid_parameter(
                name,
                self.value,
                "a finite threshold (at or above 0 for a two-sided one)",
            ))
        }
    }
}

/// The crossing points of one series.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Crossing {
    /// The first level at which the series is beyond the threshold; `None` when never crossed.
    pub first: Option<f64>,
    /// Position of `first` in the sweep.
    pub first_index: Option<usize>,
    /// The crossing point linearly interpolated between the last level before `first` and
    /// `first`; equals `first` when the very first level is already crossed.
    pub interpolated: Option<f64>,
    /// The first level from which the series stays beyond the threshold to the end of the sweep.
    pub sustained: Option<f64>,
}

impl Crossing {
    /// Returns the first crossed level, or an error when the series never crossed.
    ///
    /// `values` is the series the crossing was found in; the error reports the value that came
    /// closest to the threshold.
    ///
    /// # Errors
    /// Returns [`Error::NeverCrossed`] naming `metric`, the threshold and the closest value.
    pub fn require(&self, metric: &str, threshold: &Threshold, values: &[f64]) -> Result<f64> {
        self.first.ok_or_else(|| {
            let closest = values
                .iter()
                .copied()
                .max_by(|a, b| threshold.margin(*a).total_cmp(&threshold.margin(*b)))
                .unwrap_or(f64::NAN);
            Error::NeverCrossed {
                metric: metric.to_string(),
                threshold: threshold.value,
                closest,
            }
        })
    }
}

/// Finds where `values`, measured at `levels`, first crosses `threshold`.
///
/// The interpolated point solves `margin(level) = 0` on the straight line between the last
/// uncrossed point and the first crossed one, where `margin` is [`Threshold::margin`]; when either
/// margin is infinite the interpolated point is the crossed level.
///
/// # Errors
/// - [`Error::Empty`] for an empty series;
/// - [`Error::ShapeMismatch`] when `levels` and `values` differ in length;
/// - [`Error::NonFinite`] for a NaN value or a non-finite level (infinite values are accepted);
/// - [`Error::InvalidParameter`] for a non-finite threshold or a negative two-sided one.
pub fn find_crossing(levels: &[f64], values: &[f64], threshold: &Threshold) -> Result<Crossing> {
    threshold.validate("threshold")?;
    if levels.is_empty() {
        return Err(Error::Empty("series of levels"));
    }
    if levels.len() != values.len() {
        return Err(Error::shape(
            "series values",
            &[levels.len()],
            &[values.len()],
        ));
    }
    if let Some(index) = levels.iter().position(|level| !level.is_finite()) {
        return Err(Error::NonFinite {
            what: "level",
            value: levels[index],
            index,
        });
    }
    if let Some(index) = values.iter().position(|value| value.is_nan()) {
        return Err(Error::NonFinite {
            what: "series value",
            value: f64::NAN,
            index,
        });
    }

    let crossed: Vec<bool> = values
        .iter()
        .map(|&value| threshold.is_crossed(value))
        .collect();
    let Some(first_index) = crossed.iter().position(|&is_crossed| is_crossed) else {
        return Ok(Crossing::default());
    };
    let interpolated = if first_index == 0 {
        levels[0]
    } else {
        let before = threshold.margin(values[first_index - 1]);
        let after = threshold.margin(values[first_index]);
        let (start, end) = (levels[first_index - 1], levels[first_index]);
        if after.is_finite() && before.is_finite() {
            start + (end - start) * (-before) / (after - before)
        } else {
            // An infinite margin on either side puts the root at the crossed level.
            end
        }
    };
    let sustained_index = crossed
        .iter()
        .rposition(|&is_crossed| !is_crossed)
        .map_or(0, |last_uncrossed| last_uncrossed + 1);
    Ok(Crossing {
        first: Some(levels[first_index]),
        first_index: Some(first_index),
        interpolated: Some(interpolated),
        sustained: levels.get(sustained_index).copied(),
    })
}

/// The rule that compares accuracy with the reference accuracy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccuracyRule {
    /// Crossed when accuracy falls more than the threshold below the reference's.
    Drop,
    /// Crossed when accuracy differs from the reference's by more than the threshold either way,
    /// as when a training run is compared against an earlier checkpoint.
    Change,
}

/// The three thresholds that define a crossover.
///
/// Defaults: an accuracy drop of more than 0.01 (one percentage point), `|mean LLR| > 1` nat (one
/// sample distinguishes the models), and `|total LLR| > 3` nats over the evaluation set, a
/// likelihood ratio of about 20:1 and close to Wald's SPRT boundary `ln((1 - b) / a) = 2.94` for
/// error rates `a = b = 0.05`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Thresholds {
    /// Accuracy change as a fraction (0.01 is one percentage point).
    pub accuracy: f64,
    /// Whether a drop or any change of accuracy counts.
    pub accuracy_rule: AccuracyRule,
    /// Per-sample threshold on `|mean LLR|`, in nats.
    pub per_sample_llr: f64,
    /// Population threshold on `|total LLR|`, in nats.
    pub population_llr: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            accuracy: 0.01,
            accuracy_rule: AccuracyRule::Drop,
            per_sample_llr: 1.0,
            population_llr: 3.0,
        }
    }
}

impl Thresholds {
    /// Checks that every threshold is finite and positive.
    ///
    /// # Errors
    /// Returns [`Error::InvalidParameter`] naming the first invalid threshold.
    pub fn validate(&self) -> Result<()> {
        for (name, value) in [
            ("accuracy threshold", self.accuracy),
            ("per-sample LLR threshold", self.per_sample_llr),
            ("population LLR threshold", self.population_llr),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(Error::invalid_parameter(
                    name,
                    value,
                    "a finite number above 0",
                ));
            }
        }
        Ok(())
    }
}

/// The order in which behavior and information cross their thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Accuracy crosses at an earlier level than the per-sample LLR.
    BehaviorFirst,
    /// The per-sample LLR crosses at an earlier level than accuracy.
    InformationFirst,
    /// Both cross at the same level.
    Simultaneous,
    /// Only accuracy crosses within the sweep.
    BehaviorOnly,
    /// Only the per-sample LLR crosses within the sweep.
    InformationOnly,
    /// Neither crosses within the sweep.
    Neither,
}

impl Direction {
    /// Classifies the order of two crossings by their position in the sweep.
    pub fn classify(behavior: &Crossing, information: &Crossing) -> Self {
        match (behavior.first_index, information.first_index) {
            (Some(b), Some(i)) if b < i => Direction::BehaviorFirst,
            (Some(b), Some(i)) if b > i => Direction::InformationFirst,
            (Some(_), Some(_)) => Direction::Simultaneous,
            (Some(_), None) => Direction::BehaviorOnly,
            (None, Some(_)) => Direction::InformationOnly,
            (None, None) => Direction::Neither,
        }
    }

    /// Returns the label used in reports, such as `behavior-first`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Direction::BehaviorFirst => "behavior-first",
            Direction::InformationFirst => "information-first",
            Direction::Simultaneous => "simultaneous",
            Direction::BehaviorOnly => "behavior-only",
            Direction::InformationOnly => "information-only",
            Direction::Neither => "neither",
        }
    }
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The crossings of accuracy, per-sample LLR and population LLR in one sweep, and their order.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Crossovers {
    /// Crossing of an accuracy change larger than [`Thresholds::accuracy`].
    pub accuracy: Crossing,
    /// Crossing of `|mean LLR|` above [`Thresholds::per_sample_llr`].
    pub per_sample_llr: Crossing,
    /// Crossing of `|total LLR|` above [`Thresholds::population_llr`].
    pub population_llr: Crossing,
    /// The order of the accuracy and per-sample LLR crossings.
    pub direction: Direction,
}

impl Crossovers {
    /// Finds the three crossings in series measured at `levels`.
    ///
    /// `reference_accuracy` is the unperturbed model's accuracy on the same set; `accuracy`,
    /// `mean_llr` and `total_llr` hold one value per level.
    ///
    /// # Errors
    /// Returns the errors of [`Thresholds::validate`] and [`find_crossing`], and
    /// [`Error::NonFinite`] for a non-finite reference accuracy.
    pub fn find(
        levels: &[f64],
        reference_accuracy: f64,
        accuracy: &[f64],
        mean_llr: &[f64],
        total_llr: &[f64],
        thresholds: &Thresholds,
    ) -> Result<Self> {
        thresholds.validate()?;
        if !reference_accuracy.is_finite() {
            return Err(Error::NonFinite {
                what: "reference accuracy",
                value: reference_accuracy,
                index: 0,
            });
        }
        let accuracy_change: Vec<f64> = accuracy
            .iter()
            .map(|&value| value - reference_accuracy)
            .collect();
        let accuracy_threshold = match thresholds.accuracy_rule {
            AccuracyRule::Drop => Threshold::below(-thresholds.accuracy),
            AccuracyRule::Change => Threshold::outside(thresholds.accuracy),
        };
        let accuracy = find_crossing(levels, &accuracy_change, &accuracy_threshold)?;
        let per_sample_llr = find_crossing(
            levels,
            mean_llr,
            &Threshold::outside(thresholds.per_sample_llr),
        )?;
        let population_llr = find_crossing(
            levels,
            total_llr,
            &Threshold::outside(thresholds.population_llr),
        )?;
        Ok(Crossovers {
            accuracy,
            per_sample_llr,
            population_llr,
            direction: Direction::classify(&accuracy, &per_sample_llr),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;
    use proptest::prelude::*;

    #[test]
    fn crossing_finds_first_and_interpolates() {
        let levels = [0.0, 0.5, 1.0];
        let values = [0.0, 0.5, 1.5];
        let crossing = find_crossing(&levels, &values, &Threshold::above(1.0)).unwrap();
        assert_eq!(crossing.first, Some(1.0));
        assert_eq!(crossing.first_index, Some(2));
        assert_relative_eq!(crossing.interpolated.unwrap(), 0.75, epsilon = 1e-12);
        assert_eq!(crossing.sustained, Some(1.0));
    }

    #[test]
    fn crossing_is_none_when_never_crossed() {
        let crossing = find_crossing(&[0.0, 1.0], &[0.2, 0.9], &Threshold::outside(1.0)).unwrap();
        assert_eq!(crossing, Crossing::default());
        let error = crossing
            .require("mean_llr", &Threshold::outside(1.0), &[0.2, -0.9])
            .unwrap_err();
        assert!(matches!(error, Error::NeverCrossed { closest, .. } if closest == -0.9));
    }

    #[test]
    fn crossing_at_exact_threshold_does_not_count() {
        let crossing = find_crossing(&[0.0, 1.0], &[0.0, 1.0], &Threshold::above(1.0)).unwrap();
        assert_eq!(crossing.first, None);
    }

    #[test]
    fn crossing_at_first_level_interpolates_to_it() {
        let crossing = find_crossing(&[8.0, 4.0], &[-5.0, -6.0], &Threshold::outside(1.0)).unwrap();
        assert_eq!(crossing.first, Some(8.0));
        assert_eq!(crossing.interpolated, Some(8.0));
        assert_eq!(crossing.sustained, Some(8.0));
    }

    #[test]
    fn sustained_crossing_skips_wandering() {
        let levels = [0.0, 0.1, 0.2, 0.3, 0.4];
        let values = [0.0, -4.0, 2.0, 5.0, 9.0];
        let crossing = find_crossing(&levels, &values, &Threshold::outside(3.0)).unwrap();
        assert_eq!(crossing.first, Some(0.1));
        assert_eq!(crossing.sustained, Some(0.3));
    }

    #[test]
    fn sustained_is_none_when_series_ends_uncrossed() {
        let crossing =
            find_crossing(&[0.0, 1.0, 2.0], &[0.0, 5.0, 0.0], &Threshold::above(1.0)).unwrap();
        assert_eq!(crossing.first, Some(1.0));
        assert_eq!(crossing.sustained, None);
    }

    #[test]
    fn crossing_follows_given_order_of_levels() {
        // Bit widths walked from 8 down to 1.
        let levels = [8.0, 6.0, 4.0, 2.0, 1.0];
        let values = [0.0, 0.1, 0.5, 2.0, 4.0];
        let crossing = find_crossing(&levels, &values, &Threshold::outside(1.0)).unwrap();
        assert_eq!(crossing.first, Some(2.0));
        assert_relative_eq!(
            crossing.interpolated.unwrap(),
            4.0 - 2.0 * (0.5 / 1.5),
            epsilon = 1e-12
        );
    }

    #[test]
    fn crossing_with_infinite_value_interpolates_to_level() {
        let crossing =
            find_crossing(&[0.0, 1.0], &[0.0, f64::INFINITY], &Threshold::above(1.0)).unwrap();
        assert_eq!(crossing.interpolated, Some(1.0));
    }

    #[test]
    fn crossing_after_infinite_uncrossed_value_interpolates_to_level() {
        let below =
            find_crossing(&[0.0, 1.0], &[f64::INFINITY, 0.0], &Threshold::below(1.0)).unwrap();
        assert_eq!(below.interpolated, Some(1.0));
        let above = find_crossing(
            &[0.0, 1.0],
            &[f64::NEG_INFINITY, 2.0],
            &Threshold::above(1.0),
        )
        .unwrap();
        assert_eq!(above.interpolated, Some(1.0));
    }

    #[test]
    fn crossing_rejects_bad_series() {
        assert!(matches!(
            find_crossing(&[], &[], &Threshold::above(1.0)),
            Err(Error::Empty(_))
        ));
        assert!(matches!(
            find_crossing(&[0.0], &[0.0, 1.0], &Threshold::above(1.0)),
            Err(Error::ShapeMismatch { .. })
        ));
        assert!(matches!(
            find_crossing(&[0.0, 1.0], &[0.0, f64::NAN], &Threshold::above(1.0)),
            Err(Error::NonFinite { index: 1, .. })
        ));
        assert!(matches!(
            find_crossing(&[0.0, f64::NAN], &[0.0, 1.0], &Threshold::above(1.0)),
            Err(Error::NonFinite { index: 1, .. })
        ));
        assert!(matches!(
            find_crossing(&[0.0], &[0.0], &Threshold::outside(-1.0)),
            Err(Error::InvalidParameter { .. })
        ));
    }

    #[test]
    fn thresholds_reject_non_positive_values() {
        let thresholds = Thresholds {
            per_sample_llr: 0.0,
            ..Thresholds::default()
        };
        let error = thresholds.validate().unwrap_err();
        assert!(error.to_string().contains("per-sample LLR threshold"));
    }

    #[test]
    fn crossovers_classify_behavior_first() {
        let levels = [0.0, 0.5, 0.75, 0.95];
        let accuracy = [0.97, 0.97, 0.90, 0.5];
        let mean_llr = [0.0, -0.01, -0.3, -1.5];
        let total_llr = [0.0, -20.0, -3000.0, -15000.0];
        let crossovers = Crossovers::find(
            &levels,
            0.97,
            &accuracy,
            &mean_llr,
            &total_llr,
            &Thresholds::default(),
        )
        .unwrap();
        assert_eq!(crossovers.accuracy.first, Some(0.75));
        assert_eq!(crossovers.per_sample_llr.first, Some(0.95));
        assert_eq!(crossovers.population_llr.first, Some(0.5));
        assert_eq!(crossovers.direction, Direction::BehaviorFirst);
    }

    #[test]
    fn accuracy_rise_counts_only_as_change() {
        let levels = [0.0, 100.0, 200.0];
        let accuracy = [0.05, 0.05, 0.9];
        let mean_llr = [0.0, 1.5, 3.0];
        let total_llr = [0.0, 100.0, 200.0];
        let drop = Crossovers::find(
            &levels,
            0.05,
            &accuracy,
            &mean_llr,
            &total_llr,
            &Thresholds::default(),
        )
        .unwrap();
        assert_eq!(drop.accuracy.first, None);
        assert_eq!(drop.direction, Direction::InformationOnly);
        let thresholds = Thresholds {
            accuracy_rule: AccuracyRule::Change,
            ..Thresholds::default()
        };
        let change =
            Crossovers::find(&levels, 0.05, &accuracy, &mean_llr, &total_llr, &thresholds).unwrap();
        assert_eq!(change.accuracy.first, Some(200.0));
        assert_eq!(change.direction, Direction::InformationFirst);
    }

    #[test]
    fn direction_reports_ties_and_missing_crossings() {
        let at = |index| Crossing {
            first_index: Some(index),
            first: Some(index as f64),
            ..Crossing::default()
        };
        let never = Crossing::default();
        assert_eq!(Direction::classify(&at(2), &at(2)), Direction::Simultaneous);
        assert_eq!(Direction::classify(&at(2), &never), Direction::BehaviorOnly);
        assert_eq!(Direction::classify(&never, &never), Direction::Neither);
        assert_eq!(Direction::InformationFirst.to_string(), "information-first");
    }

    proptest! {
        #[test]
        fn interpolated_point_lies_between_neighbours(
            values in proptest::collection::vec(-10.0f64..10.0, 2..30)
        ) {
            let levels: Vec<f64> = (0..values.len()).map(|index| index as f64).collect();
            let crossing = find_crossing(&levels, &values, &Threshold::outside(2.0)).unwrap();
            if let (Some(first), Some(interpolated)) = (crossing.first, crossing.interpolated) {
                prop_assert!(interpolated <= first);
                prop_assert!(interpolated >= (first - 1.0).max(0.0));
                prop_assert!(values[first as usize].abs() > 2.0);
                prop_assert!(values[..first as usize].iter().all(|value| value.abs() <= 2.0));
            } else {
                prop_assert!(values.iter().all(|value| value.abs() <= 2.0));
            }
            if let Some(sustained) = crossing.sustained {
                prop_assert!(values[sustained as usize..].iter().all(|value| value.abs() > 2.0));
            }
        }
    }
}
