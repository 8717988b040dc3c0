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
}

/// An extra dashed vertical line on a sweep figure, for a level found outside [`Crossovers`].
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    /// Legend text; the level is appended.
    pub label: String,
    /// Where the line is drawn. A level that is not one of the drawn points is left out.
    pub level: f64,
}

const ACCURACY_COLOR: RGBColor = RGBColor(200, 55, 45);
const LLR_COLOR: RGBColor = RGBColor(40, 90, 180);
const POPULATION_COLOR: RGBColor = RGBColor(60, 140, 70);
/// Sweeps with more levels than this are drawn as lines without a circle per level.
const MAX_MARKED_POINTS: usize = 100;
const MARKER_COLORS: [RGBColor; 4] = [
    RGBColor(130, 60, 170),
    RGBColor(225, 135, 20),
    RGBColor(20, 150, 150),
    RGBColor(110, 110, 110),
];

type DrawResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Draws accuracy (left axis) and mean LLR (right axis) against the level into an SVG file, with
/// the ±threshold band of the per-sample LLR and a dashed vertical line at each crossover.
///
/// # Errors
/// Returns [`Error::UnknownMetric`] when the sweep lacks `accuracy` or `mean_llr`,
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

/// Draws the figure of [`plot_sweep`] with one more dashed vertical line per marker, in colors
/// that cycle after four markers.
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
    let points: Vec<(f64, f64, f64)> = result
        .levels()
        .into_iter()
        .zip(accuracy)
        .zip(mean_llr)
        .map(|((level, accuracy), llr)| (level, accuracy, llr))
        .filter(|&(level, _, llr)| (!options.log_x || level > 0.0) && llr.is_finite())
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
        result,
        crossovers,
        thresholds,
        markers,
        points: &points,
        title: options
            .title
            .clone()
            .unwrap_or_else(|| result.perturbation.clone()),
    };
    let (low, high) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), point| {
            (low.min(point.0), high.max(point.0))
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

struct Figure<'a> {
    result: &'a SweepResult,
    crossovers: &'a Crossovers,
    thresholds: &'a Thresholds,
    markers: &'a [Marker],
    points: &'a [(f64, f64, f64)],
    title: String,
}

impl Figure<'_> {
    fn draw<X>(&self, path: &Path, x_axis: X) -> DrawResult<()>
    where
        X: AsRangedCoord<Value = f64> + Clone,
        X::CoordDescType: ValueFormatter<f64>,
    {
        let root = SVGBackend::new(path, (960, 560)).into_drawing_area();
        root.fill(&WHITE)?;
        let threshold = self.thresholds.per_sample_llr;
        let llr_low = self
            .points
            .iter()
            .map(|point| point.2)
            .fold(-1.5 * threshold, f64::min);
        let llr_high = self
            .points
            .iter()
            .map(|point| point.2)
            .fold(0.25 * threshold, f64::max);
        let llr_span = llr_high - llr_low;
        let llr_range: RangedCoordf64 =
            (llr_low - 0.05 * llr_span..llr_high + 0.05 * llr_span).into();

        let mut chart = ChartBuilder::on(&root)
            .caption(&self.title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(46)
            .y_label_area_size(64)
            .right_y_label_area_size(64)
            .build_cartesian_2d(x_axis.clone(), 0.0..1.02f64)?
            .set_secondary_coord(x_axis, llr_range);
        chart
            .configure_mesh()
            .x_desc(self.result.level_name.as_str())
            .y_desc("accuracy")
            .y_label_formatter(&|value| format!("{value:.1}"))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        chart
            .configure_secondary_axes()
            .y_desc("mean LLR (nats)")
            .draw()?;

        // The band |mean LLR| <= threshold inside which one sample cannot tell the models apart.
        let (x_start, x_end) = (self.points[0].0, self.points[self.points.len() - 1].0);
        for bound in [-threshold, threshold] {
            if (llr_low..=llr_high).contains(&bound) {
                chart.draw_secondary_series(DashedLineSeries::new(
                    [(x_start, bound), (x_end, bound)],
                    4,
                    4,
                    LLR_COLOR.mix(0.5).stroke_width(1),
                ))?;
            }
        }

        chart
            .draw_series(LineSeries::new(
                self.points.iter().map(|point| (point.0, point.1)),
                ACCURACY_COLOR.stroke_width(2),
            ))?
            .label("accuracy (left)")
            .legend(|(x, y)| {
                PathElement::new([(x, y), (x + 20, y)], ACCURACY_COLOR.stroke_width(2))
            });
        // Point markers only for short sweeps: thousands of epochs would bury the lines and
        // inflate the file.
        let marked_points = if self.points.len() <= MAX_MARKED_POINTS {
            self.points
        } else {
            &[]
        };
        chart.draw_series(
            marked_points
                .iter()
                .map(|point| Circle::new((point.0, point.1), 3, ACCURACY_COLOR.filled())),
        )?;
        chart
            .draw_secondary_series(LineSeries::new(
                self.points.iter().map(|point| (point.0, point.2)),
                LLR_COLOR.stroke_width(2),
            ))?
            .label(format!("mean LLR (right), band ±{threshold} nat"))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], LLR_COLOR.stroke_width(2)));
        chart.draw_secondary_series(
            marked_points
                .iter()
                .map(|point| Circle::new((point.0, point.2), 3, LLR_COLOR.filled())),
        )?;

        for (name, crossing, color) in [
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
        ] {
            let Some(level) = crossing.first else {
                continue;
            };
            if !self.points.iter().any(|point| point.0 == level) {
                continue;
            }
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

        for (marker, color) in self.markers.iter().zip(MARKER_COLORS.iter().cycle()) {
            let level = marker.level;
            if !self.points.iter().any(|point| point.0 == level) {
                continue;
            }
            chart
                .draw_series(DashedLineSeries::new(
                    [(level, 0.0), (level, 1.02)],
                    4,
                    4,
                    color.stroke_width(2),
                ))?
                .label(format!("{} at {level}", marker.label))
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
        root.present()?;
        Ok(())
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
                values: vec![0.97, -0.001 * f64::from(step), -1.0 * f64::from(step)],
            })
            .collect();
        for (name, sweep, expected_circles) in [("short.svg", &short, 20), ("long.svg", &long, 0)] {
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
            assert_eq!(svg.matches("<circle").count(), expected_circles, "{name}");
        }
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
        };
        plot_sweep(&result, &crossovers, &thresholds, &path, &options).unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().contains("log axis"));
    }
}
