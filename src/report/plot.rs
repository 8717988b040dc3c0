//! The SVG figure of a sweep: accuracy and mean LLR against the level, crossovers marked.

use std::ops::Range;
use std::path::Path;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::data::float::FloatPrettyPrinter;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use crate::crossover::{Crossovers, Thresholds};
use crate::error::{Error, Result};
use crate::sweep::SweepResult;

/// Settings of [`plot_sweep`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PlotOptions {
    /// Draw the level axis on a log scale, for training epochs. Levels at or below zero are then
    /// left out of the figure.
    pub log_x: bool,
    /// Title above the figure; defaults to the perturbation name.
    pub title: Option<String>,
    /// Label of the level axis; defaults to the sweep's level name.
    pub x_label: Option<String>,
}

/// An extra dashed vertical line on a sweep figure, for a level found outside [`Crossovers`].
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    /// Legend text; the level is appended.
    pub label: String,
    /// Level of the line. A level that is not one of the drawn points is left out.
    pub level: f64,
}

const ACCURACY_COLOR: RGBColor = RGBColor(200, 55, 45);
const LLR_COLOR: RGBColor = RGBColor(40, 90, 180);
const POPULATION_COLOR: RGBColor = RGBColor(60, 140, 70);
const MARKER_COLORS: [RGBColor; 4] = [
    RGBColor(130, 60, 170),
    RGBColor(225, 135, 20),
    RGBColor(20, 150, 150),
    RGBColor(110, 110, 110),
];
/// Sweeps with more levels than this are drawn as lines without a circle per level.
const MAX_MARKED_POINTS: usize = 100;

/// Largest magnitude of an axis end. Values beyond it are drawn at the axis edge, so that spans,
/// paddings and the tick arithmetic of plotters stay finite.
pub(super) const AXIS_LIMIT: f64 = 1e300;
/// Smallest lower end of a log axis. With [`MAX_LOG_RATIO`] it keeps the tick arithmetic of
/// plotters 0.3.7 on normal, finite numbers.
pub(super) const LOG_AXIS_FLOOR: f64 = 1e-300;
/// Largest ratio of the end to the start of a log axis, 300 decades.
const MAX_LOG_RATIO: f64 = 1e300;
/// Spans of a linear axis below this count as zero and are widened.
const MIN_LINEAR_SPAN: f64 = 1e-250;
/// A linear axis narrower than this fraction of its largest end magnitude is widened, because
/// its ticks would differ only in their last digits.
const MIN_RELATIVE_SPAN: f64 = 1e-9;
/// Fraction of the span added at each end of the level axis (of the log span on a log axis), so
/// that the first and last level stay off the axis lines.
const LEVEL_PADDING: f64 = 0.02;
/// Fraction of the span added at each end of a value axis.
const VALUE_PADDING: f64 = 0.05;
/// Length in pixels of a line sample in the legend.
const LEGEND_SAMPLE: i32 = 20;

type DrawResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Draws a two-panel SVG figure of a sweep.
///
/// The upper panel shows accuracy (left axis) and mean LLR (right axis) against the level, with
/// the per-sample threshold as a dotted line. The lower panel shows `|total LLR|` on a log scale
/// with the population threshold; levels where the total is 0 are left out of it. Dashed vertical
/// lines mark the three crossovers in both panels.
///
/// Non-finite values are left out of their series, and a series without any drawable value is
/// named in the legend as missing. Values beyond ±1e300 are drawn at the axis edge, as are values
/// on a log axis below 1e-300 or more than 300 decades below its end. A threshold outside
/// [1e-300, 1e299] is named in the legend but not drawn.
///
/// # Errors
/// Returns [`Error::UnknownMetric`] when the sweep lacks `accuracy`, `mean_llr` or `total_llr`,
/// [`Error::Empty`] when no level is finite (and above 0 with [`PlotOptions::log_x`]), and
/// [`Error::Plot`] when drawing or writing fails.
pub fn plot_sweep(
    result: &SweepResult,
    crossovers: &Crossovers,
    thresholds: &Thresholds,
    path: &Path,
    options: &PlotOptions,
) -> Result<()> {
    plot_sweep_with_markers(result, crossovers, thresholds, &[], path, options)
}

/// Draws the figure of [`plot_sweep`] with one more dashed vertical line per marker in both
/// panels, in colors that cycle after four markers.
///
/// # Errors
/// Returns the errors of [`plot_sweep`].
pub fn plot_sweep_with_markers(
    result: &SweepResult,
    crossovers: &Crossovers,
    thresholds: &Thresholds,
    markers: &[Marker],
    path: &Path,
    options: &PlotOptions,
) -> Result<()> {
    let accuracy = result.column("accuracy")?;
    let mean_llr = result.column("mean_llr")?;
    let total_llr = result.column("total_llr")?;
    let points: Vec<Point> = result
        .levels()
        .into_iter()
        .zip(accuracy)
        .zip(mean_llr)
        .zip(total_llr)
        .map(|(((level, accuracy), mean_llr), total_llr)| Point {
            level,
            accuracy,
            mean_llr,
            total_llr,
        })
        .filter(|point| point.level.is_finite() && (!options.log_x || point.level > 0.0))
        .collect();
    if points.is_empty() {
        return Err(Error::Empty("plottable levels"));
    }

    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent).map_err(|error| Error::io(parent, error))?;
    }

    let levels = points.iter().map(|point| point.level);
    let x_range = if options.log_x {
        log_axis_range(levels, LEVEL_PADDING)
    } else {
        linear_axis_range(levels, LEVEL_PADDING)
    };
    let figure = Figure {
        crossovers,
        thresholds,
        markers,
        points: &points,
        x_range: x_range.clone(),
        log_x: options.log_x,
        x_zero_tolerance: MIN_RELATIVE_SPAN * (x_range.end - x_range.start),
        title: options
            .title
            .clone()
            .unwrap_or_else(|| result.perturbation.clone()),
        x_label: options
            .x_label
            .clone()
            .unwrap_or_else(|| result.level_name.clone()),
    };
    let drawn = if options.log_x {
        figure.draw(path, LogAxis::new(x_range))
    } else {
        figure.draw(path, RangedCoordf64::from(x_range))
    };
    drawn.map_err(|error| Error::Plot {
        path: path.to_path_buf(),
        reason: error.to_string(),
    })
}

/// Returns whether a threshold can be drawn: finite, and inside [1e-300, 1e299] so that the
/// tenfold margins around it stay within the axis limits.
pub(super) fn threshold_is_drawable(threshold: f64) -> bool {
    (LOG_AXIS_FLOOR..=AXIS_LIMIT / 10.0).contains(&threshold)
}

/// Returns a linear axis range that contains every finite value (clamped to ±1e300), widened
/// when the values are equal or nearly so, and padded by `padding` times the span at each end.
/// Without finite values the range is -1..1. Both ends are finite and the start is below the end.
fn linear_axis_range(values: impl IntoIterator<Item = f64>, padding: f64) -> Range<f64> {
    let (mut low, mut high) = finite_bounds(values, -AXIS_LIMIT, AXIS_LIMIT).unwrap_or((0.0, 0.0));
    let magnitude = low.abs().max(high.abs());
    let span = high - low;
    if span < MIN_LINEAR_SPAN || span < MIN_RELATIVE_SPAN * magnitude {
        let center = 0.5 * (low + high);
        let half = if magnitude > MIN_LINEAR_SPAN {
            0.5 * magnitude
        } else {
            1.0
        };
        low = center - half;
        high = center + half;
    }
    let margin = padding * (high - low);
    (low - margin).max(-AXIS_LIMIT)..(high + margin).min(AXIS_LIMIT)
}

/// Returns a log axis range that contains every finite value above 0 (clamped into
/// [1e-300, 1e300]), widened tenfold at each end when the values are equal or nearly so, and
/// padded by `padding` times the log span at each end. Without such values the range is
/// 0.1..10. The start is above 0 and below the end, and the end is finite. The range spans at
/// most 300 decades, so values far below the largest one can lie below its start.
fn log_axis_range(values: impl IntoIterator<Item = f64>, padding: f64) -> Range<f64> {
    let positive = values.into_iter().filter(|value| *value > 0.0);
    let (low, high) = finite_bounds(positive, LOG_AXIS_FLOOR, AXIS_LIMIT).unwrap_or((1.0, 1.0));
    let (mut log_low, mut log_high) = (low.log10(), high.log10());
    if log_high - log_low < MIN_RELATIVE_SPAN {
        log_low -= 1.0;
        log_high += 1.0;
    }
    let margin = padding * (log_high - log_low);
    let start = 10f64.powf(log_low - margin).max(LOG_AXIS_FLOOR);
    let end = 10f64.powf(log_high + margin).min(AXIS_LIMIT);
    limit_log_span(start, end)
}

/// Raises the start of a log axis range so that it spans at most 300 decades. Plotters 0.3.7
/// divides the end by the start to count decades, and a quotient that overflows to infinity
/// makes it loop about 10^18 times.
pub(super) fn limit_log_span(start: f64, end: f64) -> Range<f64> {
    start.max(end / MAX_LOG_RATIO)..end
}

/// Returns the smallest and largest finite value, each clamped into `floor..=ceiling`, or `None`
/// when no value is finite.
fn finite_bounds(
    values: impl IntoIterator<Item = f64>,
    floor: f64,
    ceiling: f64,
) -> Option<(f64, f64)> {
    values
        .into_iter()
        .filter(|value| value.is_finite())
        .map(|value| value.max(floor).min(ceiling))
        .fold(None, |bounds, value| match bounds {
            None => Some((value, value)),
            Some((low, high)) => Some((f64::min(low, value), f64::max(high, value))),
        })
}

/// Moves a value into `range`, so that values beyond the axis limits are drawn at the edge.
fn clamp_into(value: f64, range: &Range<f64>) -> f64 {
    value.max(range.start).min(range.end)
}

/// Formats a tick label like plotters 0.3.7 formats a linear axis, with scientific notation for
/// long numbers, and prints values within `zero_tolerance` of zero as 0.0. Tick arithmetic
/// leaves such values near zero (-0.0 or -1e-17), which the plotters formatter prints as -0.0.
fn format_tick(value: f64, zero_tolerance: f64) -> String {
    if value.abs() <= zero_tolerance {
        return "0.0".into();
    }
    FloatPrettyPrinter {
        allow_scientific: true,
        min_decimal: 1,
        max_decimal: 5,
    }
    .print(value)
}

/// Formats a log-axis tick label, left empty unless the value is 1, 2 or 5 times a power of ten.
/// On ranges under two decades plotters 0.3.7 puts a tick at every integer multiple of the
/// power of ten, and the labels from 6 to 10 overlap.
fn format_log_tick(value: f64) -> String {
    let mantissa = value / 10f64.powf(value.log10().floor());
    let labeled = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .any(|&multiple| (mantissa - multiple).abs() < 1e-6 * multiple);
    if labeled {
        format_tick(value, 0.0)
    } else {
        String::new()
    }
}

/// Formats a level or threshold for the legend: plainly for ordinary magnitudes, in scientific
/// notation below 1e-4 and from 1e6 on.
fn format_number(value: f64) -> String {
    let magnitude = value.abs();
    if value == 0.0 || !value.is_finite() || (1e-4..1e6).contains(&magnitude) {
        format!("{value}")
    } else {
        format!("{value:e}")
    }
}

/// Builds a legend sample of a dashed line with `dash`-pixel dashes and `gap`-pixel gaps, matching
/// a [`DashedLineSeries`] drawn with the same numbers.
pub(super) fn dashed_legend(
    (x, y): (i32, i32),
    dash: i32,
    gap: i32,
    style: ShapeStyle,
) -> DashedPathElement<std::array::IntoIter<(i32, i32), 2>, i32> {
    DashedPathElement::new([(x, y), (x + LEGEND_SAMPLE, y)], dash, gap, style)
}

/// A log-scale axis whose key points contain each value once.
///
/// `LogCoord::key_points` of plotters 0.3.7 emits each power of ten twice when it adds nine
/// light points per decade (on ranges under two decades), which draws that tick label twice.
pub(super) struct LogAxis {
    range: Range<f64>,
    coord: LogCoord<f64>,
}

impl LogAxis {
    /// Creates the axis. `range` must be finite with a start above 0, as [`log_axis_range`]
    /// returns it.
    pub(super) fn new(range: Range<f64>) -> Self {
        LogAxis {
            coord: range.clone().log_scale().into(),
            range,
        }
    }
}

impl Clone for LogAxis {
    fn clone(&self) -> Self {
        LogAxis::new(self.range.clone())
    }
}

impl Ranged for LogAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.coord.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        let mut points = self.coord.key_points(hint);
        points.dedup_by(|next, previous| (*next - *previous).abs() <= 1e-9 * previous.abs());
        points
    }

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

struct Point {
    level: f64,
    accuracy: f64,
    mean_llr: f64,
    total_llr: f64,
}

struct Figure<'a> {
    crossovers: &'a Crossovers,
    thresholds: &'a Thresholds,
    markers: &'a [Marker],
    points: &'a [Point],
    /// Range of the level axis, padded beyond the first and last level.
    x_range: Range<f64>,
    /// Whether the level axis is logarithmic.
    log_x: bool,
    /// Linear level-axis tick values this close to zero are labeled 0.0.
    x_zero_tolerance: f64,
    title: String,
    x_label: String,
}

impl Figure<'_> {
    fn draw<X>(&self, path: &Path, x_axis: X) -> DrawResult<()>
    where
        X: Ranged<ValueType = f64> + ValueFormatter<f64> + Clone,
    {
        let root = SVGBackend::new(path, (960, 760)).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(&self.title, ("sans-serif", 22))?;
        let (upper, lower) = root.split_vertically(440);
        self.draw_accuracy_and_mean(&upper, x_axis.clone())?;
        self.draw_total(&lower, x_axis)?;
        root.present()?;
        Ok(())
    }

    fn draw_accuracy_and_mean<X>(
        &self,
        area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
        x_axis: X,
    ) -> DrawResult<()>
    where
        X: Ranged<ValueType = f64> + ValueFormatter<f64> + Clone,
    {
        let threshold = self.thresholds.per_sample_llr;
        let threshold_drawn = threshold_is_drawable(threshold);
        let means: Vec<(f64, f64)> = self
            .points
            .iter()
            .filter(|point| point.mean_llr.is_finite())
            .map(|point| (point.level, point.mean_llr))
            .collect();
        let threshold_margins = if threshold_drawn {
            vec![-1.5 * threshold, 0.25 * threshold]
        } else {
            Vec::new()
        };
        let llr_range = linear_axis_range(
            means.iter().map(|point| point.1).chain(threshold_margins),
            VALUE_PADDING,
        );
        let llr_zero_tolerance = MIN_RELATIVE_SPAN * (llr_range.end - llr_range.start);
        let accuracy_range = 0.0..1.02;

        let mut chart = ChartBuilder::on(area)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .right_y_label_area_size(64)
            .build_cartesian_2d(x_axis.clone(), accuracy_range.clone())?
            .set_secondary_coord(x_axis, RangedCoordf64::from(llr_range.clone()));
        chart
            .configure_mesh()
            .x_desc(self.x_label.as_str())
            .y_desc("accuracy")
            .x_label_formatter(&|value| self.format_x_tick(*value))
            .y_label_formatter(&|value| format!("{value:.1}"))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        chart
            .configure_secondary_axes()
            .y_desc("mean LLR (nats)")
            .y_label_formatter(&|value| format_tick(*value, llr_zero_tolerance))
            .draw()?;

        if threshold_drawn {
            // A bound outside the axis would be drawn pinned to the plot's edge, at a wrong height.
            for bound in [-threshold, threshold]
                .into_iter()
                .filter(|bound| llr_range.contains(bound))
            {
                chart.draw_secondary_series(DashedLineSeries::new(
                    [(self.x_range.start, bound), (self.x_range.end, bound)],
                    3,
                    3,
                    LLR_COLOR.mix(0.7).stroke_width(1),
                ))?;
            }
        }

        chart
            .draw_series(LineSeries::new(
                self.points
                    .iter()
                    .filter(|point| point.accuracy.is_finite())
                    .map(|point| {
                        (
                            self.x(point.level),
                            clamp_into(point.accuracy, &accuracy_range),
                        )
                    }),
                ACCURACY_COLOR.stroke_width(2),
            ))?
            .label("accuracy (left axis)")
            .legend(|(x, y)| {
                PathElement::new(
                    [(x, y), (x + LEGEND_SAMPLE, y)],
                    ACCURACY_COLOR.stroke_width(2),
                )
            });
        chart.draw_series(
            self.marked_points()
                .iter()
                .filter(|point| point.accuracy.is_finite())
                .map(|point| {
                    let center = (
                        self.x(point.level),
                        clamp_into(point.accuracy, &accuracy_range),
                    );
                    Circle::new(center, 3, ACCURACY_COLOR.filled())
                }),
        )?;

        let threshold_text = format_number(threshold);
        let mean_label = if means.is_empty() {
            "mean LLR not finite at any level".to_string()
        } else if threshold_drawn {
            format!("mean LLR (right axis); dotted: ±{threshold_text} nat")
        } else {
            format!("mean LLR (right axis); threshold ±{threshold_text} nat not drawn")
        };
        let means: Vec<(f64, f64)> = means
            .into_iter()
            .map(|(level, mean)| (self.x(level), clamp_into(mean, &llr_range)))
            .collect();
        let mean_series = chart
            .draw_secondary_series(LineSeries::new(
                means.iter().copied(),
                LLR_COLOR.stroke_width(2),
            ))?
            .label(mean_label);
        if !means.is_empty() {
            mean_series.legend(|(x, y)| {
                PathElement::new([(x, y), (x + LEGEND_SAMPLE, y)], LLR_COLOR.stroke_width(2))
            });
        }
        if self.points.len() <= MAX_MARKED_POINTS {
            chart.draw_secondary_series(
                means
                    .iter()
                    .map(|&center| Circle::new(center, 3, LLR_COLOR.filled())),
            )?;
        }

        let top = accuracy_range.end;
        for (name, level, color) in self.crossover_lines() {
            let x = self.x(level);
            chart
                .draw_series(DashedLineSeries::new(
                    [(x, 0.0), (x, top)],
                    8,
                    5,
                    color.stroke_width(2),
                ))?
                .label(format!("{name} at {}", format_number(level)))
                .legend(move |point| dashed_legend(point, 8, 5, color.stroke_width(2)));
        }
        for (label, level, color) in self.marker_lines() {
            let x = self.x(level);
            chart
                .draw_series(DashedLineSeries::new(
                    [(x, 0.0), (x, top)],
                    4,
                    4,
                    color.stroke_width(2),
                ))?
                .label(format!("{label} at {}", format_number(level)))
                .legend(move |point| dashed_legend(point, 4, 4, color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()?;
        Ok(())
    }

    fn draw_total<X>(
        &self,
        area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
        x_axis: X,
    ) -> DrawResult<()>
    where
        X: Ranged<ValueType = f64> + ValueFormatter<f64> + Clone,
    {
        let threshold = self.thresholds.population_llr;
        let threshold_drawn = threshold_is_drawable(threshold);
        let totals: Vec<(f64, f64)> = self
            .points
            .iter()
            .map(|point| (point.level, point.total_llr.abs()))
            .filter(|&(_, total)| total > 0.0 && total.is_finite())
            .collect();
        let threshold_margins = if threshold_drawn {
            vec![threshold / 10.0, threshold * 10.0]
        } else {
            Vec::new()
        };
        let y_range = log_axis_range(
            totals.iter().map(|point| point.1).chain(threshold_margins),
            VALUE_PADDING,
        );

        let mut chart = ChartBuilder::on(area)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .right_y_label_area_size(64)
            .build_cartesian_2d(x_axis, LogAxis::new(y_range.clone()))?;
        chart
            .configure_mesh()
            .x_desc(self.x_label.as_str())
            .y_desc("|total LLR| (nats)")
            .x_label_formatter(&|value| self.format_x_tick(*value))
            .y_label_formatter(&|value| format!("{value:.0e}"))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;

        let threshold_text = format_number(threshold);
        if threshold_drawn {
            chart
                .draw_series(DashedLineSeries::new(
                    [
                        (self.x_range.start, threshold),
                        (self.x_range.end, threshold),
                    ],
                    3,
                    3,
                    POPULATION_COLOR.stroke_width(1),
                ))?
                .label(format!("population threshold {threshold_text} nats"))
                .legend(|point| dashed_legend(point, 3, 3, POPULATION_COLOR.stroke_width(1)));
        } else {
            chart
                .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())?
                .label(format!(
                    "population threshold {threshold_text} nats not drawn"
                ));
        }

        let totals: Vec<(f64, f64)> = totals
            .into_iter()
            .map(|(level, total)| (self.x(level), clamp_into(total, &y_range)))
            .collect();
        let total_series = chart.draw_series(LineSeries::new(
            totals.iter().copied(),
            BLACK.stroke_width(2),
        ))?;
        if totals.is_empty() {
            total_series.label("|total LLR| is 0 or not finite at every level");
        } else {
            total_series
                .label("|total LLR| over the evaluation set")
                .legend(|(x, y)| {
                    PathElement::new([(x, y), (x + LEGEND_SAMPLE, y)], BLACK.stroke_width(2))
                });
        }
        if self.points.len() <= MAX_MARKED_POINTS {
            chart.draw_series(
                totals
                    .iter()
                    .map(|&center| Circle::new(center, 3, BLACK.filled())),
            )?;
        }

        for (_, level, color) in self.crossover_lines() {
            let x = self.x(level);
            chart.draw_series(DashedLineSeries::new(
                [(x, y_range.start), (x, y_range.end)],
                8,
                5,
                color.stroke_width(2),
            ))?;
        }
        for (_, level, color) in self.marker_lines() {
            let x = self.x(level);
            chart.draw_series(DashedLineSeries::new(
                [(x, y_range.start), (x, y_range.end)],
                4,
                4,
                color.stroke_width(2),
            ))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()?;
        Ok(())
    }

    fn format_x_tick(&self, value: f64) -> String {
        if self.log_x {
            format_log_tick(value)
        } else {
            format_tick(value, self.x_zero_tolerance)
        }
    }

    /// Returns where a level is drawn: levels beyond the axis limits sit at the axis edge.
    fn x(&self, level: f64) -> f64 {
        clamp_into(level, &self.x_range)
    }

    /// Returns the points that get a circle: all of them for short sweeps, none for long ones,
    /// where thousands of circles would bury the lines and inflate the file.
    fn marked_points(&self) -> &[Point] {
        if self.points.len() <= MAX_MARKED_POINTS {
            self.points
        } else {
            &[]
        }
    }

    /// Returns label, level and colour of every marker that lies on the drawn levels.
    fn marker_lines(&self) -> Vec<(&str, f64, RGBColor)> {
        self.markers
            .iter()
            .zip(MARKER_COLORS.iter().cycle())
            .map(|(marker, &color)| (marker.label.as_str(), marker.level, color))
            .filter(|(_, level, _)| self.points.iter().any(|point| point.level == *level))
            .collect()
    }

    /// Returns name, level and colour of every crossover that lies on the drawn levels.
    fn crossover_lines(&self) -> Vec<(&'static str, f64, RGBColor)> {
        [
            (
                "accuracy crossover",
                &self.crossovers.accuracy,
                ACCURACY_COLOR,
            ),
            (
                "per-sample LLR crossover",
                &self.crossovers.per_sample_llr,
                LLR_COLOR,
            ),
            (
                "population LLR crossover",
                &self.crossovers.population_llr,
                POPULATION_COLOR,
            ),
        ]
        .into_iter()
        .filter_map(|(name, crossing, color)| crossing.first.map(|level| (name, level, color)))
        .filter(|(_, level, _)| self.points.iter().any(|point| point.level == *level))
        .collect()
    }
}

/// Runs `work` on another thread and returns its output, panicking when it takes longer than a
/// minute. Plotters 0.3.7 loops practically forever on some degenerate axes, which would
/// otherwise hang the test.
#[cfg(test)]
pub(super) fn run_with_time_limit<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || sender.send(work()));
    match receiver.recv_timeout(std::time::Duration::from_secs(60)) {
        Ok(output) => output,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("drawing did not finish within 60 s")
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!("drawing thread panicked"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::SweepRow;

    /// Builds a sweep with one row per level from the values of each column at that level.
    fn sweep_of(rows: &[(f64, [f64; 3])]) -> SweepResult {
        SweepResult {
            perturbation: "test pruning".into(),
            level_name: "strength".into(),
            metric_names: vec!["accuracy".into(), "mean_llr".into(), "total_llr".into()],
            rows: rows
                .iter()
                .map(|&(level, values)| SweepRow {
                    level,
                    values: values.to_vec(),
                })
                .collect(),
            reference_accuracy: 0.97,
            n_samples: 10_000,
        }
    }

    /// Draws the figure of `result` on another thread (see [`run_with_time_limit`]) and returns
    /// the SVG text.
    fn draw_svg(result: SweepResult, thresholds: Thresholds, options: PlotOptions) -> String {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("plot.svg");
        let target = path.clone();
        run_with_time_limit(move || {
            let crossovers = result.crossovers(&thresholds).unwrap();
            plot_sweep(&result, &crossovers, &thresholds, &target, &options)
        })
        .unwrap();
        std::fs::read_to_string(&path).unwrap()
    }

    /// Returns the horizontal extent in pixels of every SVG polyline in `color` between the
    /// first occurrence of `start` and the next `<text` element after it.
    fn polyline_widths(svg: &str, start: &str, color: &str) -> Vec<i32> {
        let section = &svg[svg.find(start).unwrap()..];
        let section = &section[section.find("</text>").unwrap()..];
        let section = &section[..section.find("<text").unwrap_or(section.len())];
        section
            .lines()
            .filter(|line| line.starts_with("<polyline") && line.contains(color))
            .map(|line| {
                let points = line.split("points=\"").nth(1).unwrap();
                let xs: Vec<i32> = points
                    .split_whitespace()
                    .filter_map(|point| point.split(',').next()?.parse().ok())
                    .collect();
                xs.iter().max().unwrap() - xs.iter().min().unwrap()
            })
            .collect()
    }

    fn result() -> SweepResult {
        SweepResult {
            perturbation: "test pruning".into(),
            level_name: "strength".into(),
            metric_names: vec!["accuracy".into(), "mean_llr".into(), "total_llr".into()],
            rows: (0..10)
                .map(|step| {
                    let level = f64::from(step) / 10.0;
                    SweepRow {
                        level,
                        values: vec![
                            0.97 - level * level * 0.5,
                            -level * level * 2.0,
                            -1e4 * level,
                        ],
                    }
                })
                .collect(),
            reference_accuracy: 0.97,
            n_samples: 10_000,
        }
    }

    #[test]
    fn plot_writes_svg_with_labels() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("plot.svg");
        let result = result();
        let thresholds = Thresholds::default();
        let crossovers = result.crossovers(&thresholds).unwrap();
        plot_sweep(
            &result,
            &crossovers,
            &thresholds,
            &path,
            &PlotOptions::default(),
        )
        .unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("mean LLR (nats)"));
        assert!(svg.contains("accuracy crossover at"));
    }

    #[test]
    fn plot_draws_markers_at_drawn_levels() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("markers.svg");
        let result = result();
        let thresholds = Thresholds::default();
        let crossovers = result.crossovers(&thresholds).unwrap();
        let markers = [
            Marker {
                label: "first marker".into(),
                level: 0.3,
            },
            Marker {
                label: "off-grid marker".into(),
                level: 0.35,
            },
        ];
        plot_sweep_with_markers(
            &result,
            &crossovers,
            &thresholds,
            &markers,
            &path,
            &PlotOptions::default(),
        )
        .unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.contains("first marker at 0.3"));
        assert!(!svg.contains("off-grid marker"));
    }

    #[test]
    fn long_sweep_drops_point_markers() {
        let directory = tempfile::tempdir().unwrap();
        let thresholds = Thresholds::default();
        let short = result();
        let mut long = result();
        long.rows = (0..500)
            .map(|step| SweepRow {
                level: f64::from(step),
                values: vec![0.97, -0.001 * f64::from(step), -f64::from(step)],
            })
            .collect();
        let mut circles = Vec::new();
        for (name, sweep) in [("short.svg", &short), ("long.svg", &long)] {
            let path = directory.path().join(name);
            let crossovers = sweep.crossovers(&thresholds).unwrap();
            plot_sweep(
                sweep,
                &crossovers,
                &thresholds,
                &path,
                &PlotOptions::default(),
            )
            .unwrap();
            let svg = std::fs::read_to_string(&path).unwrap();
            circles.push(svg.matches("<circle").count());
        }
        // Ten levels in the upper panel twice, nine non-zero totals in the lower panel.
        assert_eq!(circles, [29, 0]);
    }

    #[test]
    fn log_plot_skips_level_zero() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("log.svg");
        let result = result();
        let thresholds = Thresholds::default();
        let crossovers = result.crossovers(&thresholds).unwrap();
        let options = PlotOptions {
            log_x: true,
            title: Some("log axis".into()),
            x_label: None,
        };
        plot_sweep(&result, &crossovers, &thresholds, &path, &options).unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().contains("log axis"));
    }

    #[test]
    fn extreme_thresholds_finish_drawing() {
        let ten_levels: Vec<(f64, [f64; 3])> = (0..10)
            .map(|step| {
                let level = f64::from(step) / 10.0;
                (level, [0.97 - 0.5 * level, -2.0 * level, -1e4 * level])
            })
            .collect();
        let defaults = Thresholds::default();
        let cases = [
            (
                Thresholds {
                    population_llr: 1e308,
                    ..defaults
                },
                "population threshold 1e308 nats not drawn",
            ),
            (
                Thresholds {
                    population_llr: 1e-320,
                    ..defaults
                },
                "population threshold 1e-320 nats not drawn",
            ),
            (
                Thresholds {
                    per_sample_llr: 1e308,
                    ..defaults
                },
                "threshold ±1e308 nat not drawn",
            ),
            (
                Thresholds {
                    per_sample_llr: 1e-320,
                    ..defaults
                },
                "threshold ±1e-320 nat not drawn",
            ),
        ];
        for (thresholds, legend) in cases {
            let svg = draw_svg(sweep_of(&ten_levels), thresholds, PlotOptions::default());
            assert!(svg.contains(legend), "{legend}");
        }
    }

    #[test]
    fn extreme_values_finish_drawing() {
        let rows = [
            (-1e308, [0.97, -1e308, -f64::MAX]),
            (0.5, [0.5, 1e-320, -1e-320]),
            (1e308, [0.0, f64::MAX, f64::INFINITY]),
        ];
        for log_x in [false, true] {
            let options = PlotOptions {
                log_x,
                ..PlotOptions::default()
            };
            let svg = draw_svg(sweep_of(&rows), Thresholds::default(), options);
            assert!(svg.contains("accuracy (left axis)"), "log_x {log_x}");
        }
        let tiny_levels = [(1e-320, [0.97, 0.0, 0.0]), (2e-320, [0.9, -1.0, -3.0])];
        for log_x in [false, true] {
            let options = PlotOptions {
                log_x,
                ..PlotOptions::default()
            };
            let svg = draw_svg(sweep_of(&tiny_levels), Thresholds::default(), options);
            assert!(svg.contains("accuracy (left axis)"), "log_x {log_x}");
        }
    }

    #[test]
    fn missing_mean_llr_still_draws_accuracy() {
        let rows = [
            (0.0, [0.97, f64::NEG_INFINITY, f64::NEG_INFINITY]),
            (0.5, [0.9, f64::NEG_INFINITY, f64::NEG_INFINITY]),
            (1.0, [0.5, f64::NEG_INFINITY, f64::NEG_INFINITY]),
        ];
        let svg = draw_svg(
            sweep_of(&rows),
            Thresholds::default(),
            PlotOptions::default(),
        );
        assert!(svg.contains("accuracy (left axis)"));
        assert!(svg.contains("mean LLR not finite at any level"));
        assert!(svg.contains("|total LLR| is 0 or not finite at every level"));
        // Three accuracy circles only: the mean LLR and total series have no drawable value.
        assert_eq!(svg.matches("<circle").count(), 3);
    }

    #[test]
    fn zero_totals_are_named_in_legend() {
        let rows = [(0.0, [0.97, 0.0, 0.0]), (1.0, [0.9, -0.5, 0.0])];
        let svg = draw_svg(
            sweep_of(&rows),
            Thresholds::default(),
            PlotOptions::default(),
        );
        assert!(svg.contains("|total LLR| is 0 or not finite at every level"));
        assert!(svg.contains("mean LLR (right axis)"));
    }

    #[test]
    fn write_reports_draws_without_finite_mean_llr() {
        let directory = tempfile::tempdir().unwrap();
        let result = sweep_of(&[
            (0.0, [0.97, f64::NEG_INFINITY, -1.0]),
            (1.0, [0.5, f64::NEG_INFINITY, -10.0]),
        ]);
        let thresholds = Thresholds::default();
        let crossovers = result.crossovers(&thresholds).unwrap();
        let files = crate::report::write_reports(
            directory.path(),
            &result,
            &crossovers,
            &thresholds,
            serde_json::Map::new(),
            &PlotOptions::default(),
        )
        .unwrap();
        let svg = std::fs::read_to_string(&files.plot).unwrap();
        assert!(svg.contains("mean LLR not finite at any level"));
    }

    #[test]
    fn crossover_legend_entries_are_dashed() {
        let svg = draw_svg(result(), Thresholds::default(), PlotOptions::default());
        let accuracy_color = "#C8372D";
        // The legend samples follow the last legend text of the upper panel.
        let widths = polyline_widths(&svg, "population LLR crossover at", accuracy_color);
        let solid: Vec<i32> = widths
            .iter()
            .copied()
            .filter(|&w| w == LEGEND_SAMPLE)
            .collect();
        let dashes: Vec<i32> = widths
            .iter()
            .copied()
            .filter(|&w| w < LEGEND_SAMPLE)
            .collect();
        assert_eq!(solid.len(), 1, "{widths:?}");
        assert!(dashes.len() >= 2, "{widths:?}");
        assert!(dashes.iter().sum::<i32>() < LEGEND_SAMPLE, "{widths:?}");
    }

    #[test]
    fn level_axis_pads_both_ends() {
        let linear = linear_axis_range([0.0, 0.5, 0.99], LEVEL_PADDING);
        assert!((linear.start + 0.0198).abs() < 1e-12, "{linear:?}");
        assert!((linear.end - 1.0098).abs() < 1e-12, "{linear:?}");

        let log = log_axis_range([1.0, 100.0, 1e4], LEVEL_PADDING);
        assert!((log.start - 10f64.powf(-0.08)).abs() < 1e-12, "{log:?}");
        assert!((log.end - 10f64.powf(4.08)).abs() < 1e-6, "{log:?}");
    }

    #[test]
    fn axis_ranges_stay_finite_and_ordered() {
        let cases: [&[f64]; 7] = [
            &[],
            &[f64::NAN, f64::INFINITY],
            &[0.0],
            &[1e308],
            &[-f64::MAX, f64::MAX],
            &[1e-320, 2e-320],
            &[1.0, 1.0 + 1e-15],
        ];
        for values in cases {
            let linear = linear_axis_range(values.iter().copied(), VALUE_PADDING);
            assert!(
                linear.start.is_finite() && linear.end.is_finite(),
                "{values:?}"
            );
            assert!(linear.start < linear.end, "{values:?}: {linear:?}");
            let span = linear.end - linear.start;
            assert!(span >= MIN_LINEAR_SPAN, "{values:?}: {linear:?}");

            let log = log_axis_range(values.iter().copied(), VALUE_PADDING);
            assert!(log.start >= LOG_AXIS_FLOOR, "{values:?}: {log:?}");
            assert!(log.end <= AXIS_LIMIT, "{values:?}: {log:?}");
            assert!(log.start < log.end, "{values:?}: {log:?}");
            assert!((log.end / log.start).is_finite(), "{values:?}: {log:?}");
        }
        let widest = log_axis_range([1e-300, 1e300], 0.0);
        assert_eq!(widest.end / widest.start, MAX_LOG_RATIO);
    }

    #[test]
    fn single_level_draws_full_width_thresholds() {
        let rows = [(0.5, [0.9, -2.0, -1e4])];
        let svg = draw_svg(
            sweep_of(&rows),
            Thresholds::default(),
            PlotOptions::default(),
        );
        // Dotted lines with 3-pixel dashes and gaps across the plotting area, several hundred
        // pixels wide, yield about a hundred dashes each.
        let population_dashes = svg
            .lines()
            .filter(|line| line.contains("#3C8C46") && line.contains("stroke-width=\"1\""))
            .count();
        let per_sample_dashes = svg
            .lines()
            .filter(|line| line.contains("#285AB4") && line.contains("opacity=\"0.7\""))
            .count();
        assert!(population_dashes > 50, "{population_dashes}");
        assert!(per_sample_dashes > 100, "{per_sample_dashes}");
    }

    #[test]
    fn tick_labels_have_no_negative_zero() {
        assert_eq!(format_tick(-0.0, 0.0), "0.0");
        assert_eq!(format_tick(-1e-17, 1e-9), "0.0");
        assert_eq!(format_tick(-0.5, 1e-9), "-0.5");
        assert_eq!(format_tick(1e300, 1e291), "1.0e300");
        let svg = draw_svg(result(), Thresholds::default(), PlotOptions::default());
        assert!(!svg.contains("\n-0.0\n"));
        assert!(!svg.contains("\n-0\n"));
    }

    #[test]
    fn log_ticks_label_one_two_and_five() {
        assert_eq!(format_log_tick(1000.0), "1000.0");
        assert_eq!(format_log_tick(0.2), "0.2");
        assert_eq!(format_log_tick(50.0), "50.0");
        assert_eq!(format_log_tick(700.0), "");
    }

    #[test]
    fn log_axis_key_points_are_distinct() {
        let axis = LogAxis::new(0.9..20.0);
        let points = axis.key_points(11);
        assert!(points.contains(&10.0), "{points:?}");
        for pair in points.windows(2) {
            assert!(pair[0] < pair[1], "{points:?}");
        }
    }

    #[test]
    fn log_plot_labels_each_tick_once() {
        let rows = [
            (1.0, [0.97, -0.1, -100.0]),
            (2.0, [0.9, -0.3, -200.0]),
            (5.0, [0.6, -1.5, -500.0]),
            (10.0, [0.3, -3.0, -1e3]),
            (15.0, [0.1, -4.5, -1.5e3]),
        ];
        let options = PlotOptions {
            log_x: true,
            ..PlotOptions::default()
        };
        let svg = draw_svg(sweep_of(&rows), Thresholds::default(), options);
        // One "10.0" label under each of the two panels, and ticks at 3, 4 and 6 to 9 unlabeled.
        assert_eq!(svg.matches("\n10.0\n").count(), 2);
        assert_eq!(svg.matches("\n5.0\n").count(), 2);
        assert!(!svg.contains("\n3.0\n"));
    }
}
