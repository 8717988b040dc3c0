//! Reports of a sweep: a text table for the terminal, a CSV file, a JSON summary and an SVG plot.

pub mod atlas;
mod plot;

pub use plot::{plot_sweep, plot_sweep_with_markers, Marker, PlotOptions};

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::crossover::{AccuracyRule, Crossing, Crossovers, Thresholds};
use crate::error::{Error, Result};
use crate::sweep::SweepResult;

/// Formats a number for a table cell: fixed point for ordinary magnitudes, scientific notation
/// for very small or very large ones.
pub fn format_value(value: f64) -> String {
    if value.is_infinite() {
        return if value > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let magnitude = value.abs();
    if value == 0.0 || (1e-3..1e5).contains(&magnitude) {
        format!("{value:.4}")
    } else {
        format!("{value:.3e}")
    }
}

/// Formats a setting such as a threshold in its shortest form ("1", "0.01", "1e-300").
fn format_setting(value: f64) -> String {
    if value == 0.0 || (1e-3..1e6).contains(&value.abs()) {
        format!("{value}")
    } else {
        format!("{value:e}")
    }
}

/// Lists the crossovers first reached at `index` of the sweep, for the table's last column.
fn crossover_marks(crossovers: &Crossovers, index: usize) -> String {
    let mut marks = Vec::new();
    for (name, crossing) in [
        ("accuracy", &crossovers.accuracy),
        ("per-sample LLR", &crossovers.per_sample_llr),
        ("population LLR", &crossovers.population_llr),
    ] {
        if crossing.first_index == Some(index) {
            marks.push(name);
        }
    }
    if marks.is_empty() {
        String::new()
    } else {
        format!("<- {}", marks.join(", "))
    }
}

/// Renders the sweep as an aligned text table, one row per level, with the level at which each
/// crossover is first reached marked in the last column.
pub fn format_table(result: &SweepResult, crossovers: &Crossovers) -> String {
    let mut headers = vec![result.level_name.clone()];
    headers.extend(result.metric_names.iter().cloned());
    let rows: Vec<Vec<String>> = result
        .rows
        .iter()
        .map(|row| {
            std::iter::once(format_value(row.level))
                .chain(row.values.iter().map(|&value| format_value(value)))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = headers
        .iter()
        .enumerate()
        .map(|(column, header)| {
            rows.iter()
                .map(|row| row[column].len())
                .chain([header.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut table = String::new();
    let line = |cells: &[String], widths: &[usize]| {
        cells
            .iter()
            .zip(widths)
            .map(|(cell, &width)| format!("{cell:>width$}"))
            .collect::<Vec<_>>()
            .join("  ")
    };
    let _ = writeln!(table, "{}", line(&headers, &widths));
    let _ = writeln!(
        table,
        "{}",
        "-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1))
    );
    for (index, row) in rows.iter().enumerate() {
        let marks = crossover_marks(crossovers, index);
        let text = line(row, &widths);
        if marks.is_empty() {
            let _ = writeln!(table, "{text}");
        } else {
            let _ = writeln!(table, "{text}  {marks}");
        }
    }
    table
}

/// Renders the crossover levels and the direction as a few lines of text.
pub fn format_crossovers(
    result: &SweepResult,
    crossovers: &Crossovers,
    thresholds: &Thresholds,
) -> String {
    let describe = |crossing: &Crossing| match (crossing.first, crossing.interpolated) {
        (Some(first), Some(interpolated)) => format!(
            "{} (interpolated {}, sustained from {})",
            format_value(first),
            format_value(interpolated),
            crossing.sustained.map_or("-".to_string(), format_value)
        ),
        _ => "not crossed".to_string(),
    };
    let accuracy_rule = match thresholds.accuracy_rule {
        AccuracyRule::Drop => "drop",
        AccuracyRule::Change => "change",
    };
    let lines = [
        (
            format!(
                "accuracy crossover ({accuracy_rule} > {} points)",
                format_setting(100.0 * thresholds.accuracy)
            ),
            describe(&crossovers.accuracy),
        ),
        (
            format!(
                "per-sample LLR crossover (|mean| > {} nats)",
                format_setting(thresholds.per_sample_llr)
            ),
            describe(&crossovers.per_sample_llr),
        ),
        (
            format!(
                "population crossover (|total| > {} nats)",
                format_setting(thresholds.population_llr)
            ),
            describe(&crossovers.population_llr),
        ),
    ];
    let width = lines
        .iter()
        .map(|(label, _)| label.len())
        .max()
        .unwrap_or(0);
    let mut text = String::new();
    let _ = writeln!(
        text,
        "reference accuracy {:.2}% on {} samples",
        100.0 * result.reference_accuracy,
        result.n_samples
    );
    for (label, value) in &lines {
        let _ = writeln!(
            text,
            "{:<width$}  {value}",
            format!("{label}:"),
            width = width + 1
        );
    }
    let _ = writeln!(text, "direction: {}", crossovers.direction);
    text
}

/// Writes the sweep as CSV: a header row of the level name and metric names, then one row per
/// level. Infinite values are written as `inf` or `-inf`.
///
/// # Errors
/// Returns [`Error::Io`] when the file cannot be written.
pub fn write_csv(result: &SweepResult, path: &Path) -> Result<()> {
    let mut text = String::new();
    let mut header = vec![result.level_name.clone()];
    header.extend(result.metric_names.iter().cloned());
    let _ = writeln!(text, "{}", header.join(","));
    for row in &result.rows {
        let cells: Vec<String> = std::iter::once(row.level)
            .chain(row.values.iter().copied())
            .map(|value| format!("{value}"))
            .collect();
        let _ = writeln!(text, "{}", cells.join(","));
    }
    write_text(path, &text)
}

fn crossing_levels(crossovers: &Crossovers, pick: impl Fn(&Crossing) -> Option<f64>) -> Value {
    json!({
        "accuracy": pick(&crossovers.accuracy),
        "per_sample_llr": pick(&crossovers.per_sample_llr),
        "population_llr": pick(&crossovers.population_llr),
    })
}

/// Builds the JSON summary of a sweep.
///
/// The object contains `perturbation`, `level_name`, `n_samples`, `baseline_accuracy` (a fraction),
/// `thresholds`, `crossovers` (the first crossed grid level of `accuracy`, `per_sample_llr` and
/// `population_llr`, or `null`), `crossovers_interpolated`, `crossovers_sustained`, `direction`,
/// and `levels`: one object per level with the level under its name and every metric. Infinite
/// values become `null` (the CSV writes them as `inf` and `-inf`). `extra` entries are added at
/// the top level.
///
/// # Errors
/// Returns [`Error::InvalidParameter`] when a key of `extra` is one of the keys above.
pub fn summary_json(
    result: &SweepResult,
    crossovers: &Crossovers,
    thresholds: &Thresholds,
    extra: Map<String, Value>,
) -> Result<Value> {
    let levels: Vec<Value> = result
        .rows
        .iter()
        .map(|row| {
            let mut entry = Map::new();
            entry.insert(result.level_name.clone(), json!(row.level));
            for (name, &value) in result.metric_names.iter().zip(&row.values) {
                entry.insert(name.clone(), json!(value));
            }
            Value::Object(entry)
        })
        .collect();
    let mut summary = Map::new();
    summary.insert("perturbation".into(), json!(result.perturbation));
    summary.insert("level_name".into(), json!(result.level_name));
    summary.insert("n_samples".into(), json!(result.n_samples));
    summary.insert("baseline_accuracy".into(), json!(result.reference_accuracy));
    summary.insert("thresholds".into(), json!(thresholds));
    summary.insert(
        "crossovers".into(),
        crossing_levels(crossovers, |c| c.first),
    );
    summary.insert(
        "crossovers_interpolated".into(),
        crossing_levels(crossovers, |c| c.interpolated),
    );
    summary.insert(
        "crossovers_sustained".into(),
        crossing_levels(crossovers, |c| c.sustained),
    );
    summary.insert("direction".into(), json!(crossovers.direction));
    summary.insert("levels".into(), Value::Array(levels));
    for (key, value) in extra {
        if summary.contains_key(&key) {
            return Err(Error::invalid_parameter(
                "extra summary key",
                key,
                "a key that the summary does not already use; rename it",
            ));
        }
        summary.insert(key, value);
    }
    Ok(Value::Object(summary))
}

/// Writes any serializable value as pretty-printed JSON.
///
/// # Errors
/// Returns [`Error::Serialize`] when serialization fails and [`Error::Io`] when the file cannot
/// be written.
pub fn write_json<T: Serialize + ?Sized>(value: &T, path: &Path) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|error| Error::Serialize {
        what: path.display().to_string(),
        reason: error.to_string(),
    })?;
    write_text(path, &(text + "\n"))
}

/// Writes text to a file, creating parent directories.
pub(crate) fn write_text(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent).map_err(|error| Error::io(parent, error))?;
    }
    std::fs::write(path, text).map_err(|error| Error::io(path, error))
}

/// Paths of the files written by [`write_reports`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFiles {
    /// The per-level CSV.
    pub csv: PathBuf,
    /// The JSON summary.
    pub summary: PathBuf,
    /// The SVG plot.
    pub plot: PathBuf,
}

/// Writes `sweep.csv`, `summary.json` and `sweep.svg` into `directory`, creating it.
///
/// # Errors
/// Returns the errors of [`write_csv`], [`write_json`] and [`plot_sweep`].
pub fn write_reports(
    directory: &Path,
    result: &SweepResult,
    crossovers: &Crossovers,
    thresholds: &Thresholds,
    extra: Map<String, Value>,
    plot_options: &PlotOptions,
) -> Result<ReportFiles> {
    let files = ReportFiles {
        csv: directory.join("sweep.csv"),
        summary: directory.join("summary.json"),
        plot: directory.join("sweep.svg"),
    };
    write_csv(result, &files.csv)?;
    write_json(
        &summary_json(result, crossovers, thresholds, extra)?,
        &files.summary,
    )?;
    plot_sweep(result, crossovers, thresholds, &files.plot, plot_options)?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::SweepRow;

    fn result() -> SweepResult {
        SweepResult {
            perturbation: "test".into(),
            level_name: "strength".into(),
            metric_names: vec!["accuracy".into(), "mean_llr".into(), "total_llr".into()],
            rows: vec![
                SweepRow {
                    level: 0.0,
                    values: vec![0.9, 0.0, 0.0],
                },
                SweepRow {
                    level: 0.5,
                    values: vec![0.9, -0.01, -10.0],
                },
                SweepRow {
                    level: 0.9,
                    values: vec![0.5, -2.0, -2000.0],
                },
            ],
            reference_accuracy: 0.9,
            n_samples: 1000,
        }
    }

    #[test]
    fn table_marks_crossovers() {
        let result = result();
        let crossovers = result.crossovers(&Thresholds::default()).unwrap();
        let table = format_table(&result, &crossovers);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 5);
        assert!(lines[3].ends_with("<- population LLR"));
        assert!(lines[4].ends_with("<- accuracy, per-sample LLR"));
    }

    #[test]
    fn summary_has_documented_keys() {
        let result = result();
        let thresholds = Thresholds::default();
        let crossovers = result.crossovers(&thresholds).unwrap();
        let summary = summary_json(&result, &crossovers, &thresholds, Map::new()).unwrap();
        assert_eq!(summary["baseline_accuracy"], json!(0.9));
        assert_eq!(summary["crossovers"]["accuracy"], json!(0.9));
        assert_eq!(summary["crossovers"]["population_llr"], json!(0.5));
        assert_eq!(summary["direction"], json!("simultaneous"));
        assert_eq!(summary["levels"][2]["strength"], json!(0.9));
        assert_eq!(summary["levels"][2]["mean_llr"], json!(-2.0));
    }

    #[test]
    fn summary_rejects_extra_key_collision() {
        let result = result();
        let thresholds = Thresholds::default();
        let crossovers = result.crossovers(&thresholds).unwrap();
        let mut extra = Map::new();
        extra.insert("direction".into(), json!("bogus"));
        let error = summary_json(&result, &crossovers, &thresholds, extra).unwrap_err();
        assert!(error.to_string().contains("direction"), "{error}");
    }

    #[test]
    fn csv_has_header_and_rows() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("out/sweep.csv");
        write_csv(&result(), &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "strength,accuracy,mean_llr,total_llr");
        assert_eq!(lines[3], "0.9,0.5,-2,-2000");
    }

    #[test]
    fn format_value_switches_notation() {
        assert_eq!(format_value(0.0), "0.0000");
        assert_eq!(format_value(0.97), "0.9700");
        assert_eq!(format_value(-1.2e-6), "-1.200e-6");
        assert_eq!(format_value(f64::INFINITY), "inf");
    }
}
