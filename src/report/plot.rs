//! The SVG figure of a sweep: accuracy and mean LLR against the level, crossovers marked.

use std::path::Path;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
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

type DrawResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Draws a two-panel SVG figure of a sweep.
///
/// The upper panel shows accuracy (left axis) and mean LLR (right axis) against the level, with
/// the per-sample threshold as a dotted line. The lower panel shows `|total LLR|` on a log scale
/// with the population threshold; levels where the total is 0 are left out of it. Dashed vertical
/// lines mark the three crossovers in both panels.
///
/// # Errors
/// Returns [`Error::UnknownMetric`] when the sweep lacks `accuracy`, `mean_llr` or `total_llr`,
/// [`Error::Empty`] when no level can be drawn, and [`Error::Plot`] when drawing or writing fails.
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
        .filter(|point| (!options.log_x || point.level > 0.0) && point.mean_llr.is_finite())
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
    let figure = Figure {
        crossovers,
        thresholds,
        markers,
        points: &points,
        title: options
            .title
            .clone()
            .unwrap_or_else(|| result.perturbation.clone()),
        x_label: options
            .x_label
            .clone()
            .unwrap_or_else(|| result.level_name.clone()),
    };
    let (low, high) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), point| {
            (low.min(point.level), high.max(point.level))
        });
    let high = if high > low { high } else { low + 1.0 };
    let drawn = if options.log_x {
        figure.draw(path, (low..high).log_scale())
    } else {
        figure.draw(path, low..high)
    };
    drawn.map_err(|error| Error::Plot {
        path: path.to_path_buf(),
        reason: error.to_string(),
    })
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
    title: String,
    x_label: String,
}

impl Figure<'_> {
    fn draw<X>(&self, path: &Path, x_axis: X) -> DrawResult<()>
    where
        X: AsRangedCoord<Value = f64> + Clone,
        X::CoordDescType: ValueFormatter<f64>,
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
        X: AsRangedCoord<Value = f64> + Clone,
        X::CoordDescType: ValueFormatter<f64>,
    {
        let threshold = self.thresholds.per_sample_llr;
        let llr_low = self
            .points
            .iter()
            .map(|point| point.mean_llr)
            .fold(-1.5 * threshold, f64::min);
        let llr_high = self
            .points
            .iter()
            .map(|point| point.mean_llr)
            .fold(0.25 * threshold, f64::max);
        let llr_span = llr_high - llr_low;
        let llr_range: RangedCoordf64 =
            (llr_low - 0.05 * llr_span..llr_high + 0.05 * llr_span).into();

        let mut chart = ChartBuilder::on(area)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .right_y_label_area_size(64)
            .build_cartesian_2d(x_axis.clone(), 0.0..1.02f64)?
            .set_secondary_coord(x_axis, llr_range);
        chart
            .configure_mesh()
            .x_desc(self.x_label.as_str())
            .y_desc("accuracy")
            .y_label_formatter(&|value| format!("{value:.1}"))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        chart
            .configure_secondary_axes()
            .y_desc("mean LLR (nats)")
            .draw()?;

        let (x_start, x_end) = (
            self.points[0].level,
            self.points[self.points.len() - 1].level,
        );
        for bound in [-threshold, threshold] {
            if (llr_low..=llr_high).contains(&bound) {
                chart.draw_secondary_series(DashedLineSeries::new(
                    [(x_start, bound), (x_end, bound)],
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
                    .map(|point| (point.level, point.accuracy)),
                ACCURACY_COLOR.stroke_width(2),
            ))?
            .label("accuracy (left axis)")
            .legend(|(x, y)| {
                PathElement::new([(x, y), (x + 20, y)], ACCURACY_COLOR.stroke_width(2))
            });
        chart.draw_series(
            self.marked_points().iter().map(|point| {
                Circle::new((point.level, point.accuracy), 3, ACCURACY_COLOR.filled())
            }),
        )?;
        chart
            .draw_secondary_series(LineSeries::new(
                self.points
                    .iter()
                    .map(|point| (point.level, point.mean_llr)),
                LLR_COLOR.stroke_width(2),
            ))?
            .label(format!("mean LLR (right axis); dotted: ±{threshold} nat"))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], LLR_COLOR.stroke_width(2)));
        chart.draw_secondary_series(
            self.marked_points()
                .iter()
                .map(|point| Circle::new((point.level, point.mean_llr), 3, LLR_COLOR.filled())),
        )?;

        for (name, level, color) in self.crossover_lines() {
            chart
                .draw_series(DashedLineSeries::new(
                    [(level, 0.0), (level, 1.02)],
                    8,
                    5,
                    color.stroke_width(2),
                ))?
                .label(format!("{name} at {level}"))
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        for (label, level, color) in self.marker_lines() {
            chart
                .draw_series(DashedLineSeries::new(
                    [(level, 0.0), (level, 1.02)],
                    4,
                    4,
                    color.stroke_width(2),
                ))?
                .label(format!("{label} at {level}"))
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
                });
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
        X: AsRangedCoord<Value = f64> + Clone,
        X::CoordDescType: ValueFormatter<f64>,
    {
        let threshold = self.thresholds.population_llr;
        let totals: Vec<(f64, f64)> = self
            .points
            .iter()
            .map(|point| (point.level, point.total_llr.abs()))
            .filter(|&(_, total)| total > 0.0 && total.is_finite())
            .collect();
        let low = totals
            .iter()
            .map(|point| point.1)
            .fold(threshold / 10.0, f64::min);
        let high = totals
            .iter()
            .map(|point| point.1)
            .fold(threshold * 10.0, f64::max);
        let mut chart = ChartBuilder::on(area)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .right_y_label_area_size(64)
            .build_cartesian_2d(x_axis, (low / 2.0..high * 2.0).log_scale())?;
        chart
            .configure_mesh()
            .x_desc(self.x_label.as_str())
            .y_desc("|total LLR| (nats)")
            .y_label_formatter(&|value| format!("{value:.0e}"))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        let (x_start, x_end) = (
            self.points[0].level,
            self.points[self.points.len() - 1].level,
        );
        chart
            .draw_series(DashedLineSeries::new(
                [(x_start, threshold), (x_end, threshold)],
                3,
                3,
                POPULATION_COLOR.stroke_width(1),
            ))?
            .label(format!("population threshold {threshold} nats"))
            .legend(|(x, y)| {
                PathElement::new([(x, y), (x + 20, y)], POPULATION_COLOR.stroke_width(1))
            });
        chart
            .draw_series(LineSeries::new(
                totals.iter().copied(),
                BLACK.stroke_width(2),
            ))?
            .label("|total LLR| over the evaluation set")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.stroke_width(2)));
        if self.points.len() <= MAX_MARKED_POINTS {
            chart.draw_series(
                totals
                    .iter()
                    .map(|&point| Circle::new(point, 3, BLACK.filled())),
            )?;
        }
        for (_, level, color) in self.crossover_lines() {
            chart.draw_series(DashedLineSeries::new(
                [(level, low / 2.0), (level, high * 2.0)],
                8,
                5,
                color.stroke_width(2),
            ))?;
        }
        for (_, level, color) in self.marker_lines() {
            chart.draw_series(DashedLineSeries::new(
                [(level, low / 2.0), (level, high * 2.0)],
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::SweepRow;

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
}
