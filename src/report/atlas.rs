//! The perturbation atlas: sweeps of several perturbations of one model on one evaluation set,
//! compared side by side.
//!
//! An [`Atlas`] contains one [`AtlasRow`] per sweep: where accuracy, the per-sample LLR and the
//! population LLR cross their thresholds, and in which order accuracy and the per-sample LLR
//! cross. It renders the rows as a text table, CSV and JSON, and draws every sweep into one
//! figure of `|mean LLR|` against the accuracy drop, so that behavior-first and
//! information-first perturbations can be told apart at a glance.

use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::plot::{dashed_legend, limit_log_span, threshold_is_drawable, LogAxis};
use super::plot::{AXIS_LIMIT, LOG_AXIS_FLOOR};
use super::{crossing_levels, format_value, write_json, write_reports, write_text};
use super::{PlotOptions, ReportFiles};
use crate::crossover::{AccuracyRule, Crossing, Crossovers, Direction, Thresholds};
use crate::error::{Error, Result};
use crate::sweep::SweepResult;

/// The crossovers of one perturbation, one row of the atlas.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AtlasRow {
    /// Name of the perturbation.
    pub perturbation: String,
    /// Name of the level, for example `bits` or `sigma`.
    pub level_name: String,
    /// Folder name of the sweep's own reports, unique within the atlas.
    pub directory: String,
    /// Accuracy of the unperturbed model.
    pub reference_accuracy: f64,
    /// The three crossings and their order.
    pub crossovers: Crossovers,
    /// Mean LLR in nats at the first level where accuracy crossed; `None` when it never did.
    pub mean_llr_at_accuracy_crossover: Option<f64>,
    /// Mean LLR linearly interpolated to the interpolated accuracy crossover (see
    /// [`Crossing::interpolated`]), which compares sweeps on coarse grids more fairly than
    /// the value at the grid level.
    pub mean_llr_at_accuracy_crossover_interpolated: Option<f64>,
    /// Accuracy drop (reference minus perturbed, a fraction) at the first level where the
    /// per-sample LLR crossed; `None` when it never did.
    pub accuracy_drop_at_per_sample_crossover: Option<f64>,
}

impl AtlasRow {
    /// Finds the crossovers of one sweep and the values at them.
    ///
    /// # Errors
    /// Returns the errors of [`SweepResult::crossovers`].
    pub fn from_sweep(sweep: &SweepResult, thresholds: &Thresholds) -> Result<Self> {
        let crossovers = sweep.crossovers(thresholds)?;
        let mean_llr = sweep.column("mean_llr")?;
        let accuracy = sweep.column("accuracy")?;
        let levels = sweep.levels();
        Ok(AtlasRow {
            perturbation: sweep.perturbation.clone(),
            level_name: sweep.level_name.clone(),
            directory: slug(&sweep.perturbation),
            reference_accuracy: sweep.reference_accuracy,
            mean_llr_at_accuracy_crossover: crossovers.accuracy.first_index.map(|i| mean_llr[i]),
            mean_llr_at_accuracy_crossover_interpolated: value_at_crossing(
                &crossovers.accuracy,
                &levels,
                &mean_llr,
            ),
            accuracy_drop_at_per_sample_crossover: crossovers
                .per_sample_llr
                .first_index
                .map(|i| sweep.reference_accuracy - accuracy[i]),
            crossovers,
        })
    }

    /// Returns the row as the JSON object written to `atlas.json`.
    ///
    /// Keys: `perturbation`, `level_name`, `directory`, `reference_accuracy`, `crossovers` (the
    /// first crossed level of `accuracy`, `per_sample_llr` and `population_llr`, or `null`),
    /// `crossovers_interpolated`, `direction`, `mean_llr_at_accuracy_crossover`,
    /// `mean_llr_at_accuracy_crossover_interpolated` and `accuracy_drop_at_per_sample_crossover`.
    pub fn to_json(&self) -> Value {
        json!({
            "perturbation": self.perturbation,
            "level_name": self.level_name,
            "directory": self.directory,
            "reference_accuracy": self.reference_accuracy,
            "crossovers": crossing_levels(&self.crossovers, |c| c.first),
            "crossovers_interpolated": crossing_levels(&self.crossovers, |c| c.interpolated),
            "direction": self.crossovers.direction,
            "mean_llr_at_accuracy_crossover": self.mean_llr_at_accuracy_crossover,
            "mean_llr_at_accuracy_crossover_interpolated":
                self.mean_llr_at_accuracy_crossover_interpolated,
            "accuracy_drop_at_per_sample_crossover": self.accuracy_drop_at_per_sample_crossover,
        })
    }
}

/// Interpolates `values` linearly between the two grid levels around a crossing's interpolated
/// level. Returns the value at the first crossed level when that level is the first of the sweep
/// or equals the level before it.
fn value_at_crossing(crossing: &Crossing, levels: &[f64], values: &[f64]) -> Option<f64> {
    let index = crossing.first_index?;
    let interpolated = crossing.interpolated?;
    if index == 0 || levels[index] == levels[index - 1] {
        return Some(values[index]);
    }
    let position = (interpolated - levels[index - 1]) / (levels[index] - levels[index - 1]);
    Some(values[index - 1] + position * (values[index] - values[index - 1]))
}

/// Turns a perturbation name into a folder name: lowercase ASCII letters and digits, every other
/// run of characters replaced by one `-`.
pub fn slug(name: &str) -> String {
    let mut slug = String::new();
    for character in name.chars() {
        if character.is_ascii_alphanumeric() {
            slug.push(character.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let trimmed = slug.trim_end_matches('-');
    if trimmed.is_empty() {
        "sweep".into()
    } else {
        trimmed.into()
    }
}

/// One sweep of the atlas with its row and the extra entries of its JSON summary.
#[derive(Debug, Clone, PartialEq)]
pub struct AtlasEntry {
    /// The sweep.
    pub sweep: SweepResult,
    /// Its crossovers.
    pub row: AtlasRow,
    /// Entries added at the top level of the sweep's `summary.json`.
    pub extra: Map<String, Value>,
}

/// Paths of the files written by [`Atlas::write_reports`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtlasFiles {
    /// The comparison table as CSV.
    pub csv: PathBuf,
    /// The comparison table as JSON, a list with one object per perturbation.
    pub json: PathBuf,
    /// The combined figure.
    pub plot: PathBuf,
    /// Each sweep's own reports, in atlas order.
    pub sweeps: Vec<ReportFiles>,
}

/// Sweeps of several perturbations under one set of thresholds; see the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct Atlas {
    thresholds: Thresholds,
    entries: Vec<AtlasEntry>,
}

impl Atlas {
    /// Creates an empty atlas.
    ///
    /// # Errors
    /// Returns the errors of [`Thresholds::validate`].
    pub fn new(thresholds: Thresholds) -> Result<Self> {
        thresholds.validate()?;
        Ok(Atlas {
            thresholds,
            entries: Vec::new(),
        })
    }

    /// Returns the thresholds of every row.
    pub fn thresholds(&self) -> &Thresholds {
        &self.thresholds
    }

    /// Adds a sweep and returns its row.
    ///
    /// # Errors
    /// Returns the errors of [`AtlasRow::from_sweep`].
    pub fn push(&mut self, sweep: SweepResult) -> Result<&AtlasRow> {
        self.push_with_extra(sweep, Map::new())
    }

    /// Adds a sweep whose `summary.json` gets the `extra` entries, and returns its row. A
    /// folder name already taken by an earlier row gets a numeric suffix such as `-2`.
    ///
    /// # Errors
    /// Returns the errors of [`AtlasRow::from_sweep`].
    pub fn push_with_extra(
        &mut self,
        sweep: SweepResult,
        extra: Map<String, Value>,
    ) -> Result<&AtlasRow> {
        let mut row = AtlasRow::from_sweep(&sweep, &self.thresholds)?;
        let base = row.directory.clone();
        let mut suffix = 2;
        while self
            .entries
            .iter()
            .any(|entry| entry.row.directory == row.directory)
        {
            row.directory = format!("{base}-{suffix}");
            suffix += 1;
        }
        self.entries.push(AtlasEntry { sweep, row, extra });
        Ok(&self.entries[self.entries.len() - 1].row)
    }

    /// Returns the sweeps with their rows, in the order they were added.
    pub fn entries(&self) -> &[AtlasEntry] {
        &self.entries
    }

    /// Returns the rows, in the order they were added.
    pub fn rows(&self) -> impl Iterator<Item = &AtlasRow> {
        self.entries.iter().map(|entry| &entry.row)
    }

    /// Renders the comparison as an aligned text table: one row per perturbation with the first
    /// crossed level of each measure (`-` when never crossed), the direction, and the mean LLR at
    /// the accuracy crossover, at its grid level and interpolated.
    pub fn format_table(&self) -> String {
        let headers = [
            "perturbation",
            "level",
            "accuracy",
            "per-sample LLR",
            "population LLR",
            "direction",
            "mean LLR at accuracy",
            "(interpolated)",
        ]
        .map(String::from);
        let rows: Vec<[String; 8]> = self
            .rows()
            .map(|row| {
                [
                    row.perturbation.clone(),
                    row.level_name.clone(),
                    format_level(&row.crossovers.accuracy),
                    format_level(&row.crossovers.per_sample_llr),
                    format_level(&row.crossovers.population_llr),
                    row.crossovers.direction.to_string(),
                    row.mean_llr_at_accuracy_crossover
                        .map_or("-".into(), format_value),
                    row.mean_llr_at_accuracy_crossover_interpolated
                        .map_or("-".into(), format_value),
                ]
            })
            .collect();
        let widths: Vec<usize> = (0..headers.len())
            .map(|column| {
                rows.iter()
                    .map(|row| row[column].chars().count())
                    .chain([headers[column].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &[String; 8]| {
            let mut text = format!("{:<width$}", cells[0], width = widths[0]);
            for (cell, &width) in cells.iter().zip(&widths).skip(1) {
                let _ = write!(text, "  {cell:>width$}");
            }
            text
        };
        let mut table = String::new();
        let _ = writeln!(table, "{}", line(&headers));
        let _ = writeln!(
            table,
            "{}",
            "-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1))
        );
        for row in &rows {
            let _ = writeln!(table, "{}", line(row));
        }
        table
    }

    /// Returns the comparison as a JSON list with one [`AtlasRow::to_json`] object per
    /// perturbation.
    pub fn to_json(&self) -> Value {
        Value::Array(self.rows().map(AtlasRow::to_json).collect())
    }

    /// Writes the comparison as CSV with the columns `perturbation`, `level_name`,
    /// `reference_accuracy`, the first and interpolated level of each crossover, `direction`,
    /// `mean_llr_at_accuracy_crossover`, `mean_llr_at_accuracy_crossover_interpolated` and
    /// `accuracy_drop_at_per_sample_crossover`. A crossover that never happened is an empty cell.
    ///
    /// # Errors
    /// Returns [`Error::Io`] when the file cannot be written.
    pub fn write_csv(&self, path: &Path) -> Result<()> {
        let mut text = String::from(
            "perturbation,level_name,reference_accuracy,accuracy_crossover,\
             per_sample_llr_crossover,population_llr_crossover,\
             accuracy_crossover_interpolated,per_sample_llr_crossover_interpolated,\
             population_llr_crossover_interpolated,direction,\
             mean_llr_at_accuracy_crossover,mean_llr_at_accuracy_crossover_interpolated,\
             accuracy_drop_at_per_sample_crossover\n",
        );
        let cell = |value: Option<f64>| value.map_or(String::new(), |value| format!("{value}"));
        for row in self.rows() {
            let crossings = [
                &row.crossovers.accuracy,
                &row.crossovers.per_sample_llr,
                &row.crossovers.population_llr,
            ];
            let mut cells = vec![
                csv_field(&row.perturbation),
                csv_field(&row.level_name),
                format!("{}", row.reference_accuracy),
            ];
            cells.extend(crossings.iter().map(|crossing| cell(crossing.first)));
            cells.extend(crossings.iter().map(|crossing| cell(crossing.interpolated)));
            cells.push(row.crossovers.direction.to_string());
            cells.push(cell(row.mean_llr_at_accuracy_crossover));
            cells.push(cell(row.mean_llr_at_accuracy_crossover_interpolated));
            cells.push(cell(row.accuracy_drop_at_per_sample_crossover));
            let _ = writeln!(text, "{}", cells.join(","));
        }
        write_text(path, &text)
    }

    /// Draws every sweep as one curve of `|mean LLR|` against the accuracy drop into an SVG
    /// file; see [`plot_atlas`].
    ///
    /// # Errors
    /// Returns the errors of [`plot_atlas`].
    pub fn plot(&self, path: &Path, title: &str) -> Result<()> {
        plot_atlas(self, path, title)
    }

    /// Writes `atlas.csv`, `atlas.json` and `atlas.svg` into `directory`, and each sweep's
    /// `sweep.csv`, `summary.json` and `sweep.svg` into `directory/<row.directory>`.
    ///
    /// # Errors
    /// Returns the errors of [`Atlas::write_csv`], [`write_json`], [`Atlas::plot`] and
    /// [`write_reports`], and [`Error::Empty`] for an atlas without rows.
    pub fn write_reports(&self, directory: &Path, title: &str) -> Result<AtlasFiles> {
        if self.entries.is_empty() {
            return Err(Error::Empty("atlas"));
        }
        let mut sweeps = Vec::with_capacity(self.entries.len());
        for entry in &self.entries {
            sweeps.push(write_reports(
                &directory.join(&entry.row.directory),
                &entry.sweep,
                &entry.row.crossovers,
                &self.thresholds,
                entry.extra.clone(),
                &PlotOptions {
                    title: Some(entry.row.perturbation.clone()),
                    ..PlotOptions::default()
                },
            )?);
        }
        let files = AtlasFiles {
            csv: directory.join("atlas.csv"),
            json: directory.join("atlas.json"),
            plot: directory.join("atlas.svg"),
            sweeps,
        };
        self.write_csv(&files.csv)?;
        write_json(&self.to_json(), &files.json)?;
        self.plot(&files.plot, title)?;
        Ok(files)
    }
}

fn format_level(crossing: &Crossing) -> String {
    crossing
        .first
        .map_or("-".into(), |level| format!("{level}"))
}

/// Quotes a CSV field when it contains a comma, a quote or a line break (RFC 4180).
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// Distinct curve colors, from the Tableau 10 palette.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
const BEHAVIOR_REGION: RGBColor = RGBColor(200, 55, 45);
const INFORMATION_REGION: RGBColor = RGBColor(40, 90, 180);

/// One curve of the combined figure: x is the accuracy drop in percentage points, y is
/// `|mean LLR|` in nats.
struct Curve {
    label: String,
    direction: Direction,
    points: Vec<(f64, f64)>,
}

/// Returns the axis floor: one decade below `smallest`, and at most a tenth of the threshold.
/// Positive values above the floor are drawn where they are, and smaller ones at the floor.
/// [`axis_range`] raises a floor below 1e-300.
fn axis_floor(smallest: f64, threshold: f64) -> f64 {
    let cap = threshold / 10.0;
    if smallest.is_finite() {
        10f64.powi(smallest.log10().floor() as i32 - 1).min(cap)
    } else {
        cap / 10.0
    }
}

/// Draws the combined figure of an atlas into an SVG file.
///
/// Each sweep is one curve through its levels, with the accuracy drop in percentage points on
/// the x axis and `|mean LLR|` in nats on the y axis, both logarithmic. With
/// [`AccuracyRule::Change`] the x axis is the absolute accuracy change instead. Dashed lines mark
/// the two thresholds. A curve that passes through the lower right region (accuracy crossed, LLR
/// not yet) is behavior-first and drawn solid. One that passes through the upper left region is
/// information-first and drawn dashed, and any other order is dotted. Values at or below zero,
/// which a log axis cannot show, are drawn at the axis floor. On the x axis the floor is one
/// decade below the accuracy step of one sample (0.001 points for 10000 samples), on the y axis
/// one decade below the smallest positive `|mean LLR|`. Axes stay within [1e-300, 1e300], values
/// beyond them are drawn at the edge, and a threshold outside its axis gets no dashed line.
///
/// # Errors
/// Returns [`Error::Empty`] for an atlas without rows, the errors of [`SweepResult::column`], and
/// [`Error::Plot`] when drawing or writing fails.
pub fn plot_atlas(atlas: &Atlas, path: &Path, title: &str) -> Result<()> {
    if atlas.entries.is_empty() {
        return Err(Error::Empty("atlas"));
    }
    let thresholds = &atlas.thresholds;
    let mut curves = Vec::with_capacity(atlas.entries.len());
    for entry in &atlas.entries {
        let accuracy = entry.sweep.column("accuracy")?;
        let mean_llr = entry.sweep.column("mean_llr")?;
        let points = accuracy
            .iter()
            .zip(&mean_llr)
            .map(|(&accuracy, &llr)| {
                let change = entry.sweep.reference_accuracy - accuracy;
                let x = match thresholds.accuracy_rule {
                    AccuracyRule::Drop => change,
                    AccuracyRule::Change => change.abs(),
                };
                (100.0 * x, llr.abs())
            })
            .collect();
        curves.push(Curve {
            label: format!(
                "{}: {}",
                entry.row.perturbation, entry.row.crossovers.direction
            ),
            direction: entry.row.crossovers.direction,
            points,
        });
    }
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent).map_err(|error| Error::io(parent, error))?;
    }
    let samples = atlas
        .entries
        .iter()
        .map(|entry| entry.sweep.n_samples)
        .max()
        .unwrap_or(1)
        .max(1);
    let x_floor = axis_floor(100.0 / samples as f64, 100.0 * thresholds.accuracy);
    draw_atlas(&curves, thresholds, x_floor, path, title).map_err(|error| Error::Plot {
        path: path.to_path_buf(),
        reason: error.to_string(),
    })
}

/// Returns the range of a log axis of the combined figure: from `floor` to twice the largest
/// finite value or twenty times the threshold, whichever is larger, and at least two decades.
/// The ends are kept within [1e-300, 1e300] and at most 300 decades apart, and a threshold
/// outside [1e-300, 1e299] does not widen the range.
fn axis_range(floor: f64, values: impl IntoIterator<Item = f64>, threshold: f64) -> Range<f64> {
    let floor = floor.clamp(LOG_AXIS_FLOOR, AXIS_LIMIT / 100.0);
    let threshold_margin = threshold_is_drawable(threshold).then_some(10.0 * threshold);
    let largest = values
        .into_iter()
        .filter(|value| value.is_finite())
        .chain(threshold_margin)
        .fold(50.0 * floor, f64::max);
    limit_log_span(floor, (2.0 * largest).min(AXIS_LIMIT))
}

fn draw_atlas(
    curves: &[Curve],
    thresholds: &Thresholds,
    x_floor: f64,
    path: &Path,
    title: &str,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let x_threshold = 100.0 * thresholds.accuracy;
    let y_threshold = thresholds.per_sample_llr;
    let all_points = || curves.iter().flat_map(|curve| curve.points.iter());
    let smallest_llr = all_points()
        .map(|point| point.1)
        .filter(|value| *value > 0.0 && value.is_finite())
        .fold(f64::INFINITY, f64::min);
    let x_range = axis_range(x_floor, all_points().map(|point| point.0), x_threshold);
    let y_range = axis_range(
        axis_floor(smallest_llr, y_threshold),
        all_points().map(|point| point.1),
        y_threshold,
    );
    let (x_floor, x_max) = (x_range.start, x_range.end);
    let (y_floor, y_max) = (y_range.start, y_range.end);
    // Values beyond an axis, including infinities, are drawn at its edge.
    let clamp = |(x, y): (f64, f64)| {
        (
            if x.is_nan() {
                x_max
            } else {
                x.max(x_floor).min(x_max)
            },
            if y.is_nan() {
                y_max
            } else {
                y.max(y_floor).min(y_max)
            },
        )
    };
    // A threshold outside its axis gets no line, and its regions end at the axis edge.
    let x_line_drawn = x_range.contains(&x_threshold);
    let y_line_drawn = y_range.contains(&y_threshold);
    let x_edge = x_threshold.max(x_floor).min(x_max);
    let y_edge = y_threshold.max(y_floor).min(y_max);

    let root = SVGBackend::new(path, (1100, 720)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(LogAxis::new(x_range), LogAxis::new(y_range))?;
    let x_description = match thresholds.accuracy_rule {
        AccuracyRule::Drop => {
            "accuracy drop (percentage points; drops at or below 0 drawn at the left edge)"
        }
        AccuracyRule::Change => "|accuracy change| (percentage points; 0 drawn at the left edge)",
    };
    chart
        .configure_mesh()
        .x_desc(x_description)
        .y_desc("|mean LLR| (nats)")
        .x_label_formatter(&|value| format!("{value:.0e}"))
        .y_label_formatter(&|value| format!("{value:.0e}"))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;

    chart.draw_series([
        Rectangle::new(
            [(x_edge, y_floor), (x_max, y_edge)],
            BEHAVIOR_REGION.mix(0.07).filled(),
        ),
        Rectangle::new(
            [(x_floor, y_edge), (x_edge, y_max)],
            INFORMATION_REGION.mix(0.07).filled(),
        ),
    ])?;
    if x_line_drawn && y_line_drawn {
        let label_style = ("sans-serif", 15).into_font().color(&BLACK.mix(0.6));
        chart.draw_series([
            Text::new(
                "behavior-first region: accuracy crossed, |mean LLR| not yet",
                (x_threshold * 1.3, y_floor.sqrt() * y_threshold.sqrt()),
                label_style.clone(),
            ),
            Text::new(
                "information-first region: |mean LLR| crossed, accuracy not yet",
                (x_floor * 1.3, y_max / 1.6),
                label_style,
            ),
        ])?;
    }
    let threshold_lines = [
        (x_line_drawn, [(x_threshold, y_floor), (x_threshold, y_max)]),
        (y_line_drawn, [(x_floor, y_threshold), (x_max, y_threshold)]),
    ];
    for (_, line) in threshold_lines.into_iter().filter(|(drawn, _)| *drawn) {
        chart.draw_series(DashedLineSeries::new(
            line,
            6,
            4,
            BLACK.mix(0.5).stroke_width(1),
        ))?;
    }

    for (index, curve) in curves.iter().enumerate() {
        let color = PALETTE[index % PALETTE.len()];
        let points: Vec<(f64, f64)> = curve.points.iter().copied().map(clamp).collect();
        let style = color.stroke_width(2);
        let (dash, gap) = match curve.direction {
            Direction::BehaviorFirst | Direction::BehaviorOnly => (0, 0),
            Direction::InformationFirst | Direction::InformationOnly => (9, 5),
            Direction::Simultaneous | Direction::Neither => (2, 4),
        };
        if dash == 0 {
            chart
                .draw_series(LineSeries::new(points.iter().copied(), style))?
                .label(curve.label.as_str())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
        } else {
            chart
                .draw_series(DashedLineSeries::new(
                    points.iter().copied(),
                    dash,
                    gap,
                    style,
                ))?
                .label(curve.label.as_str())
                .legend(move |point| dashed_legend(point, dash, gap, style));
        }
        chart.draw_series(
            points
                .iter()
                .map(|&point| Circle::new(point, 3, color.filled())),
        )?;
    }

    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .margin(12)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.4))
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::SweepRow;

    /// Builds a sweep over levels 0..=4 from accuracy and mean LLR series.
    fn sweep(name: &str, accuracy: [f64; 5], mean_llr: [f64; 5]) -> SweepResult {
        SweepResult {
            perturbation: name.into(),
            level_name: "strength".into(),
            metric_names: vec!["accuracy".into(), "mean_llr".into(), "total_llr".into()],
            rows: (0..5)
                .map(|index| SweepRow {
                    level: index as f64,
                    values: vec![accuracy[index], mean_llr[index], 1000.0 * mean_llr[index]],
                })
                .collect(),
            reference_accuracy: 0.9,
            n_samples: 1000,
        }
    }

    fn atlas() -> Atlas {
        let mut atlas = Atlas::new(Thresholds::default()).unwrap();
        atlas
            .push(sweep(
                "local, damage",
                [0.9, 0.9, 0.85, 0.6, 0.3],
                [0.0, -0.01, -0.2, -1.5, -3.0],
            ))
            .unwrap();
        atlas
            .push(sweep(
                "global",
                [0.9, 0.9, 0.9, 0.895, 0.5],
                [0.0, -0.3, -1.2, -2.0, -4.0],
            ))
            .unwrap();
        atlas
            .push(sweep("harmless", [0.9; 5], [0.0, 0.0, -1e-4, -2e-4, 0.0]))
            .unwrap();
        atlas
    }

    #[test]
    fn rows_hold_crossovers_and_values_there() {
        let atlas = atlas();
        let rows: Vec<&AtlasRow> = atlas.rows().collect();
        assert_eq!(rows[0].crossovers.accuracy.first, Some(2.0));
        assert_eq!(rows[0].crossovers.per_sample_llr.first, Some(3.0));
        assert_eq!(rows[0].crossovers.direction, Direction::BehaviorFirst);
        assert_eq!(rows[0].mean_llr_at_accuracy_crossover, Some(-0.2));
        // Accuracy change -0.05 at level 2 crosses -0.01 a fifth of the way from level 1, where
        // the mean LLR moves from -0.01 to -0.2.
        let interpolated = rows[0].mean_llr_at_accuracy_crossover_interpolated.unwrap();
        assert!(
            (interpolated - (-0.01 - 0.2 * 0.19)).abs() < 1e-12,
            "{interpolated}"
        );
        assert_eq!(rows[1].crossovers.direction, Direction::InformationFirst);
        assert_eq!(rows[1].mean_llr_at_accuracy_crossover, Some(-4.0));
        let drop = rows[1].accuracy_drop_at_per_sample_crossover.unwrap();
        assert!(drop.abs() < 1e-12, "{drop}");
        assert_eq!(rows[2].crossovers.direction, Direction::Neither);
        assert_eq!(rows[2].mean_llr_at_accuracy_crossover, None);
    }

    #[test]
    fn json_has_documented_keys() {
        let json = atlas().to_json();
        let list = json.as_array().unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list[0]["perturbation"], json!("local, damage"));
        assert_eq!(list[0]["crossovers"]["accuracy"], json!(2.0));
        assert_eq!(list[0]["crossovers"]["per_sample_llr"], json!(3.0));
        assert_eq!(list[0]["crossovers"]["population_llr"], json!(1.0));
        assert_eq!(list[0]["direction"], json!("behavior-first"));
        assert_eq!(list[1]["direction"], json!("information-first"));
        assert_eq!(list[2]["crossovers"]["accuracy"], Value::Null);
        assert_eq!(list[2]["mean_llr_at_accuracy_crossover"], Value::Null);
    }

    #[test]
    fn table_lists_one_line_per_row() {
        let table = atlas().format_table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 5);
        assert!(lines[0].starts_with("perturbation"));
        assert!(lines[2].starts_with("local, damage"));
        assert!(lines[2].contains("behavior-first"));
        assert!(lines[3].contains("information-first"));
        assert!(lines[4].contains("neither"));
        assert!(lines[4].trim_end().ends_with('-'));
    }

    #[test]
    fn csv_quotes_names_and_leaves_missing_crossovers_empty() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("atlas.csv");
        atlas().write_csv(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0].split(',').count(), 13);
        assert!(lines[1].starts_with("\"local, damage\",strength,0.9,2,3,1,"));
        assert!(lines[3].starts_with("harmless,strength,0.9,,,,,,,neither,,,"));
    }

    #[test]
    fn slug_makes_folder_names() {
        assert_eq!(
            slug("quantization (symmetric, per channel)"),
            "quantization-symmetric-per-channel"
        );
        assert_eq!(
            slug("Gaussian weight noise (seed 0)"),
            "gaussian-weight-noise-seed-0"
        );
        assert_eq!(slug("(!)"), "sweep");
    }

    #[test]
    fn duplicate_names_get_distinct_folders() {
        let mut atlas = Atlas::new(Thresholds::default()).unwrap();
        for _ in 0..3 {
            atlas.push(sweep("same", [0.9; 5], [0.0; 5])).unwrap();
        }
        let folders: Vec<&str> = atlas.rows().map(|row| row.directory.as_str()).collect();
        assert_eq!(folders, ["same", "same-2", "same-3"]);
    }

    #[test]
    fn axis_floor_sits_a_decade_below_smallest_value() {
        assert_eq!(axis_floor(0.03, 1.0), 0.001);
        assert_eq!(axis_floor(0.01, 1.0), 0.001);
        assert_eq!(axis_floor(50.0, 1.0), 0.1);
        assert_eq!(axis_floor(f64::INFINITY, 1.0), 0.01);
    }

    #[test]
    fn write_reports_writes_atlas_and_sweeps() {
        let directory = tempfile::tempdir().unwrap();
        let files = atlas()
            .write_reports(directory.path(), "test atlas")
            .unwrap();
        let svg = std::fs::read_to_string(&files.plot).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("test atlas"));
        assert!(svg.contains("local, damage: behavior-first"));
        assert!(svg.contains("global: information-first"));
        assert!(files.csv.exists());
        assert!(files.json.exists());
        assert_eq!(files.sweeps.len(), 3);
        assert!(directory.path().join("local-damage/sweep.csv").exists());
        assert!(directory.path().join("global/summary.json").exists());
    }

    #[test]
    fn empty_atlas_is_rejected() {
        let directory = tempfile::tempdir().unwrap();
        let atlas = Atlas::new(Thresholds::default()).unwrap();
        assert!(matches!(
            atlas.write_reports(directory.path(), "empty"),
            Err(Error::Empty(_))
        ));
    }

    #[test]
    fn extreme_thresholds_finish_drawing() {
        let defaults = Thresholds::default();
        let cases = [
            Thresholds {
                accuracy: 1e308,
                ..defaults
            },
            Thresholds {
                accuracy: 1e-320,
                ..defaults
            },
            Thresholds {
                per_sample_llr: 1e308,
                ..defaults
            },
            Thresholds {
                per_sample_llr: 1e-320,
                ..defaults
            },
        ];
        for thresholds in cases {
            let mut atlas = Atlas::new(thresholds).unwrap();
            atlas
                .push(sweep(
                    "extreme",
                    [0.9, 0.9, 0.85, 0.6, 0.3],
                    [0.0, -1e-320, -0.2, -1e308, f64::NEG_INFINITY],
                ))
                .unwrap();
            let directory = tempfile::tempdir().unwrap();
            let path = directory.path().join("atlas.svg");
            let target = path.clone();
            super::super::plot::run_with_time_limit(move || atlas.plot(&target, "extreme"))
                .unwrap();
            let svg = std::fs::read_to_string(&path).unwrap();
            assert!(svg.contains("extreme: "), "{thresholds:?}");
        }
    }

    #[test]
    fn dashed_curves_get_dashed_legend_samples() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("atlas.svg");
        atlas().plot(&path, "legend").unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        // Legend samples follow the last legend text; the second curve is information-first
        // and drawn dashed in the second palette color.
        let legend = &svg[svg.find("harmless: neither").unwrap()..];
        let dashed_color = format!(
            "#{:02X}{:02X}{:02X}",
            PALETTE[1].0, PALETTE[1].1, PALETTE[1].2
        );
        let dashes = legend
            .lines()
            .filter(|line| line.starts_with("<polyline") && line.contains(&dashed_color))
            .count();
        assert!(dashes >= 2, "{dashes}");
    }
}
