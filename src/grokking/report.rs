//! Reports of a grokking run: `epochs.csv` with one row per evaluated epoch, `summary.json` with
//! the memorization and grokking epochs, every crossing and the leads, and `grokking.svg`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use super::analysis::{GrokkingAnalysis, GrokkingCrossovers};
use super::train::GrokkingRun;
use crate::crossover::{Crossing, Direction, Thresholds};
use crate::error::{Error, Result};
use crate::report::{plot_sweep_with_markers, summary_json, write_json, Marker, PlotOptions};
use crate::sweep::{SweepResult, SweepRow};

/// Renders the run as CSV text.
///
/// Columns: `epoch`, `train_loss`, `train_accuracy`, `test_loss`, `test_accuracy`, then every
/// metric recorded against the reference except `accuracy` (which equals `test_accuracy`), then
/// the same metrics against the initialisation with the prefix `init_` when they were recorded.
/// Cells before the reference epoch are empty; infinite values are written as `inf` or `-inf`.
pub fn epochs_csv(run: &GrokkingRun) -> String {
    let sweeps: Vec<(&str, &SweepResult)> =
        [("", &run.against_reference), ("init_", &run.against_init)]
            .into_iter()
            .filter_map(|(prefix, sweep)| sweep.as_ref().map(|sweep| (prefix, sweep)))
            .collect();
    let mut header: Vec<String> = [
        "epoch",
        "train_loss",
        "train_accuracy",
        "test_loss",
        "test_accuracy",
    ]
    .map(String::from)
    .to_vec();
    for (prefix, sweep) in &sweeps {
        header.extend(
            sweep
                .metric_names
                .iter()
                .filter(|name| *name != "accuracy")
                .map(|name| format!("{prefix}{name}")),
        );
    }

    let mut text = String::new();
    let _ = writeln!(text, "{}", header.join(","));
    // Both the history and each sweep are in epoch order, so one cursor per sweep suffices.
    let mut cursors = vec![0usize; sweeps.len()];
    for stats in &run.history {
        let mut cells = vec![
            stats.epoch.to_string(),
            stats.train_loss.to_string(),
            stats.train_accuracy.to_string(),
            stats.test_loss.to_string(),
            stats.test_accuracy.to_string(),
        ];
        for ((_, sweep), cursor) in sweeps.iter().zip(&mut cursors) {
            let row: Option<&SweepRow> = sweep
                .rows
                .get(*cursor)
                .filter(|row| row.level == stats.epoch as f64);
            if row.is_some() {
                *cursor += 1;
            }
            for (name, index) in sweep.metric_names.iter().zip(0..) {
                if name != "accuracy" {
                    cells.push(row.map_or(String::new(), |row| row.values[index].to_string()));
                }
            }
        }
        let _ = writeln!(text, "{}", cells.join(","));
    }
    text
}

/// Renders the run's milestones as a text table, in epoch order: the reference, every crossing,
/// the grokking epoch and the last epoch, each with train and test accuracy and the mean LLR, mean
/// KL and flip rate against the reference. Below the table, one line gives the direction and one
/// line per information crossing gives its lead over the accuracy crossover. When crossings
/// against the initialisation were recorded, a last line gives their accuracy and per-sample
/// crossings and direction.
pub fn format_milestones(
    run: &GrokkingRun,
    analysis: &GrokkingAnalysis,
    thresholds: &Thresholds,
) -> String {
    let threshold = thresholds.per_sample_llr;
    let mut events: Vec<(String, usize)> = Vec::new();
    if let Some(epoch) = analysis.memorization_epoch {
        events.push(("memorization (100% train)".into(), epoch));
    }
    if analysis.reference_epoch != analysis.memorization_epoch {
        if let Some(epoch) = analysis.reference_epoch {
            events.push(("reference".into(), epoch));
        }
    }
    if let Some(crossovers) = &analysis.crossovers {
        let named = [
            (
                format!("accuracy change > {} pt", 100.0 * thresholds.accuracy),
                &crossovers.core.accuracy,
            ),
            (
                format!("|mean LLR| > {threshold}"),
                &crossovers.core.per_sample_llr,
            ),
            (format!("mean LLR > +{threshold}"), &crossovers.llr_positive),
            (format!("mean LLR < -{threshold}"), &crossovers.llr_negative),
            (format!("mean KL > {threshold}"), &crossovers.kl),
            (
                format!("|total LLR| > {}", thresholds.population_llr),
                &crossovers.core.population_llr,
            ),
        ];
        for (name, crossing) in named {
            if let Some(level) = crossing.first {
                events.push((name, level as usize));
            }
        }
    }
    if let Some(epoch) = analysis.grokking_epoch {
        events.push((
            format!("grokking (test >= {}%)", 100.0 * analysis.grokking_accuracy),
            epoch,
        ));
    }
    events.push(("last epoch".into(), run.last_epoch));
    events.sort_by_key(|&(_, epoch)| epoch);

    let column = |name: &str| -> Vec<f64> {
        run.against_reference
            .as_ref()
            .and_then(|sweep| sweep.column(name).ok())
            .unwrap_or_default()
    };
    let (mean_llr, mean_kl, flip_rate) =
        (column("mean_llr"), column("mean_kl"), column("flip_rate"));
    let sweep_index = |epoch: usize| {
        run.against_reference
            .as_ref()
            .and_then(|sweep| sweep.rows.iter().position(|row| row.level == epoch as f64))
    };
    let name_width = events.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    let mut text = String::new();
    let _ = writeln!(
        text,
        "{:<name_width$}  {:>6}  {:>9}  {:>9}  {:>9}  {:>9}  {:>9}",
        "milestone", "epoch", "train acc", "test acc", "mean LLR", "mean KL", "flip rate"
    );
    for (name, epoch) in &events {
        let stats = run.history.iter().find(|stats| stats.epoch == *epoch);
        let percent = |value: Option<f64>| {
            value.map_or("-".to_string(), |value| format!("{:.2}%", 100.0 * value))
        };
        let metric = |values: &[f64]| {
            sweep_index(*epoch)
                .and_then(|index| values.get(index))
                .map_or("-".to_string(), |&value| format!("{value:.4}"))
        };
        let _ = writeln!(
            text,
            "{:<name_width$}  {:>6}  {:>9}  {:>9}  {:>9}  {:>9}  {:>9}",
            name,
            epoch,
            percent(stats.map(|stats| stats.train_accuracy)),
            percent(stats.map(|stats| stats.test_accuracy)),
            metric(&mean_llr),
            metric(&mean_kl),
            metric(&flip_rate),
        );
    }
    if let Some(crossovers) = &analysis.crossovers {
        let _ = writeln!(text, "direction: {}", crossovers.core.direction);
        let leads = crossovers.leads();
        for (name, lead) in [
            (format!("|mean LLR| > {threshold}"), leads.per_sample_llr),
            (format!("mean LLR > +{threshold}"), leads.llr_positive),
            (format!("mean LLR < -{threshold}"), leads.llr_negative),
            (format!("mean KL > {threshold}"), leads.kl),
            (
                format!("|total LLR| > {}", thresholds.population_llr),
                leads.population_llr,
            ),
        ] {
            let described = match lead {
                None => "not defined (a crossing is missing)".to_string(),
                Some(lead) if lead > 0.0 => format!("{lead} epochs before the accuracy change"),
                Some(lead) if lead < 0.0 => format!("{} epochs after the accuracy change", -lead),
                Some(_) => "at the epoch of the accuracy change".to_string(),
            };
            let _ = writeln!(text, "lead of {name}: {described}");
        }
    } else {
        let _ = writeln!(text, "the reference epoch was never reached; no crossings");
    }
    if let Some(crossovers) = &analysis.crossovers_against_init {
        let describe = |crossing: &Crossing| {
            crossing
                .first
                .map_or("not crossed".to_string(), |level| format!("epoch {level}"))
        };
        let _ = writeln!(
            text,
            "against the initialisation: accuracy change at {}, |mean LLR| > {threshold} at {}, \
             direction {}",
            describe(&crossovers.core.accuracy),
            describe(&crossovers.core.per_sample_llr),
            crossovers.core.direction
        );
    }
    text
}

/// Reads one level out of a crossing: the first, the interpolated or the sustained one.
type PickLevel = fn(&Crossing) -> Option<f64>;

/// Adds the signed LLR and KL crossings to the core summary's `crossovers`,
/// `crossovers_interpolated` and `crossovers_sustained` objects.
fn add_crossings(summary: &mut Map<String, Value>, crossovers: &GrokkingCrossovers) {
    let first: PickLevel = |crossing| crossing.first;
    let interpolated: PickLevel = |crossing| crossing.interpolated;
    let sustained: PickLevel = |crossing| crossing.sustained;
    let picks = [
        ("crossovers", first),
        ("crossovers_interpolated", interpolated),
        ("crossovers_sustained", sustained),
    ];
    for (key, pick) in picks {
        if let Some(Value::Object(object)) = summary.get_mut(key) {
            object.insert("llr_positive".into(), json!(pick(&crossovers.llr_positive)));
            object.insert("llr_negative".into(), json!(pick(&crossovers.llr_negative)));
            object.insert("kl".into(), json!(pick(&crossovers.kl)));
        }
    }
}

/// Builds the summary of crossings in one sweep: the core [`summary_json`] keys without the
/// per-level list (which `epochs.csv` holds), the signed LLR and KL crossings, and the leads.
fn crossings_summary(
    sweep: &SweepResult,
    crossovers: &GrokkingCrossovers,
    thresholds: &Thresholds,
) -> Map<String, Value> {
    let Ok(Value::Object(mut summary)) =
        summary_json(sweep, &crossovers.core, thresholds, Map::new())
    else {
        unreachable!("summary_json builds an object and no extra key can collide")
    };
    summary.remove("levels");
    add_crossings(&mut summary, crossovers);
    let leads = crossovers.leads();
    summary.insert("lead_epochs".into(), json!(leads.per_sample_llr));
    summary.insert("leads".into(), json!(leads));
    summary
}

/// Builds the JSON summary of a run.
///
/// Top-level keys: `memorization_epoch`, `reference_epoch`, `grokking_epoch`,
/// `grokking_accuracy`, `final_test_accuracy`, `last_epoch`, `thresholds`, `crossovers`,
/// `crossovers_interpolated`, `crossovers_sustained`, `direction`, `lead_epochs` and `leads`.
/// `crossovers` contains the first crossed epoch (or `null`) of `accuracy`, `per_sample_llr`,
/// `population_llr`, `llr_positive`, `llr_negative` and `kl`. `lead_epochs` is the accuracy
/// crossover minus the per-sample LLR crossover in epochs, and `leads` gives the same difference
/// for every information crossing. When the reference was never reached
/// every crossing is `null` and `direction` is `neither`. `against_init` holds the same crossing
/// keys against the initialisation when they were recorded. `extra` entries are added at the top
/// level.
pub fn grokking_summary(
    run: &GrokkingRun,
    analysis: &GrokkingAnalysis,
    thresholds: &Thresholds,
    extra: Map<String, Value>,
) -> Value {
    let mut summary = match (&run.against_reference, &analysis.crossovers) {
        (Some(sweep), Some(crossovers)) => crossings_summary(sweep, crossovers, thresholds),
        _ => {
            let none = json!({
                "accuracy": null, "per_sample_llr": null, "population_llr": null,
                "llr_positive": null, "llr_negative": null, "kl": null,
            });
            let mut summary = Map::new();
            summary.insert("thresholds".into(), json!(thresholds));
            for key in [
                "crossovers",
                "crossovers_interpolated",
                "crossovers_sustained",
            ] {
                summary.insert(key.into(), none.clone());
            }
            summary.insert("direction".into(), json!(Direction::Neither));
            summary.insert("lead_epochs".into(), Value::Null);
            summary
        }
    };
    summary.insert(
        "memorization_epoch".into(),
        json!(analysis.memorization_epoch),
    );
    summary.insert("reference_epoch".into(), json!(analysis.reference_epoch));
    summary.insert("grokking_epoch".into(), json!(analysis.grokking_epoch));
    summary.insert(
        "grokking_accuracy".into(),
        json!(analysis.grokking_accuracy),
    );
    summary.insert(
        "final_test_accuracy".into(),
        json!(analysis.final_test_accuracy),
    );
    summary.insert("last_epoch".into(), json!(run.last_epoch));
    if let (Some(sweep), Some(crossovers)) = (&run.against_init, &analysis.crossovers_against_init)
    {
        let mut against_init = crossings_summary(sweep, crossovers, thresholds);
        against_init.remove("thresholds");
        summary.insert("against_init".into(), Value::Object(against_init));
    }
    summary.extend(extra);
    Value::Object(summary)
}

/// Paths of the files written by [`write_grokking_reports`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrokkingFiles {
    /// One row per evaluated epoch.
    pub epochs: PathBuf,
    /// The JSON summary.
    pub summary: PathBuf,
    /// The SVG figure; `None` when the reference was never reached and there is nothing to draw.
    pub plot: Option<PathBuf>,
}

/// Writes `epochs.csv`, `summary.json` and `grokking.svg` into `directory`, creating it.
///
/// The figure shows test accuracy and mean LLR against the reference from the reference epoch
/// on, with the accuracy, per-sample and population crossovers and the signed LLR and KL
/// crossings marked.
///
/// # Errors
/// Returns [`Error::Io`] when a file cannot be written, and the errors of [`write_json`] and
/// [`plot_sweep_with_markers`].
pub fn write_grokking_reports(
    directory: &Path,
    run: &GrokkingRun,
    analysis: &GrokkingAnalysis,
    thresholds: &Thresholds,
    extra: Map<String, Value>,
    plot_options: &PlotOptions,
) -> Result<GrokkingFiles> {
    std::fs::create_dir_all(directory).map_err(|error| Error::io(directory, error))?;
    let epochs = directory.join("epochs.csv");
    std::fs::write(&epochs, epochs_csv(run)).map_err(|error| Error::io(&epochs, error))?;
    let summary = directory.join("summary.json");
    write_json(
        &grokking_summary(run, analysis, thresholds, extra),
        &summary,
    )?;

    let plot = match (&run.against_reference, &analysis.crossovers) {
        (Some(sweep), Some(crossovers)) => {
            let path = directory.join("grokking.svg");
            let threshold = thresholds.per_sample_llr;
            let markers: Vec<Marker> = [
                (format!("mean LLR > +{threshold}"), &crossovers.llr_positive),
                (format!("mean LLR < -{threshold}"), &crossovers.llr_negative),
                (format!("mean KL > {threshold}"), &crossovers.kl),
            ]
            .into_iter()
            .filter_map(|(label, crossing)| crossing.first.map(|level| Marker { label, level }))
            .collect();
            plot_sweep_with_markers(
                sweep,
                &crossovers.core,
                thresholds,
                &markers,
                &path,
                plot_options,
            )?;
            Some(path)
        }
        _ => {
            // Without a reference there is no figure; remove one left by an earlier run so
            // that the folder never mixes files of two runs.
            let stale = directory.join("grokking.svg");
            if stale.exists() {
                std::fs::remove_file(&stale).map_err(|error| Error::io(&stale, error))?;
            }
            None
        }
    };
    Ok(GrokkingFiles {
        epochs,
        summary,
        plot,
    })
}
