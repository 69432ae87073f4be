//! The allocation curve of a fill experiment as an SVG (the FGD paper's
//! Figure 9a): GPU allocation % against arrived GPU request %, one line per
//! policy, each the mean over seeds.

use std::path::Path;

use lepton::sim::FillResult;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::CliError;

/// One policy's mean curve: (arrived %, allocated %) at each whole percent.
pub(crate) type Curve = (String, Vec<(f64, f64)>);

/// The mean over `runs` of the allocation at each whole percent of arrival.
pub(crate) fn mean_curve(policy: &str, runs: &[&FillResult]) -> Curve {
    let max_arrived = runs
        .iter()
        .filter_map(|r| r.curve.last())
        .map(|p| p.arrived_pct)
        .fold(f64::INFINITY, f64::min);
    // Only up to where every run has data.
    let max_arrived = if max_arrived.is_finite() {
        max_arrived
    } else {
        0.0
    };
    let points = (0..=max_arrived.floor() as u32)
        .map(|percent| {
            let x = f64::from(percent);
            let at = |run: &&FillResult| {
                run.curve
                    .iter()
                    .find(|p| p.arrived_pct >= x)
                    .map_or(0.0, |p| p.alloc_pct)
            };
            let mean = runs.iter().map(at).sum::<f64>() / runs.len().max(1) as f64;
            (x, mean)
        })
        .collect();
    (policy.to_owned(), points)
}

/// Writes the allocation curves to an SVG file: the whole curves, and
/// below them the 80–100% band where policies differ; `title` names the
/// trace and seeds.
pub(crate) fn write_svg(path: &Path, title: &str, curves: &[Curve]) -> Result<(), CliError> {
    let x_max = curves
        .iter()
        .flat_map(|(_, points)| points.last().map(|p| p.0))
        .fold(100.0, f64::max);
    let whole = Axes {
        caption: title,
        x_desc: "arrived GPU request (% of capacity)",
        y_desc: "GPU allocation (% of capacity)",
        x: 0.0..x_max,
        y: 0.0..100.0,
        whole_x: false,
    };
    let band: Vec<Curve> = curves
        .iter()
        .map(|(name, points)| {
            let high = points.iter().copied().filter(|p| p.0 >= 80.0).collect();
            (name.clone(), high)
        })
        .collect();
    let lowest = band
        .iter()
        .flat_map(|(_, points)| points.iter().map(|p| p.1))
        .fold(80.0, f64::min);
    let zoom = Axes {
        caption: "the same, from 80% arrived: where the policies differ",
        x: 80.0..x_max,
        y: lowest.floor()..100.0,
        ..whole
    };
    draw_panels(path, &[(&whole, curves), (&zoom, &band)])
}

/// A chart's caption, axis names and ranges.
pub(crate) struct Axes<'a> {
    pub(crate) caption: &'a str,
    pub(crate) x_desc: &'a str,
    pub(crate) y_desc: &'a str,
    pub(crate) x: std::ops::Range<f64>,
    pub(crate) y: std::ops::Range<f64>,
    /// Label only whole values of x (hours).
    pub(crate) whole_x: bool,
}

impl Axes<'_> {
    /// Ranges from 0 to just above the largest values of `curves`.
    pub(crate) fn fitting<'a>(
        caption: &'a str,
        x_desc: &'a str,
        y_desc: &'a str,
        curves: &[Curve],
    ) -> Axes<'a> {
        let largest = |f: fn(&(f64, f64)) -> f64| {
            curves
                .iter()
                .flat_map(|(_, points)| points.iter().map(f))
                .fold(0.0f64, f64::max)
        };
        Axes {
            caption,
            x_desc,
            y_desc,
            x: 0.0..largest(|p| p.0).max(1.0),
            y: 0.0..largest(|p| p.1).max(1.0) * 1.05,
            whole_x: false,
        }
    }
}

/// Draws `curves` as lines with a legend into an SVG file.
pub(crate) fn draw_lines(path: &Path, axes: &Axes<'_>, curves: &[Curve]) -> Result<(), CliError> {
    draw_panels(path, &[(axes, curves)])
}

/// Draws charts one above the other into an SVG file.
pub(crate) fn draw_panels(path: &Path, panels: &[(&Axes<'_>, &[Curve])]) -> Result<(), CliError> {
    let height = 560 * panels.len().max(1) as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (800, height)).into_drawing_area();
        let areas = root.split_evenly((panels.len().max(1), 1));
        for ((axes, curves), area) in panels.iter().zip(&areas) {
            draw(area, axes, curves)
                .map_err(|e| CliError::Output(format!("cannot draw {}: {e}", path.display())))?;
        }
        root.present()
            .map_err(|e| CliError::Output(format!("cannot draw {}: {e}", path.display())))?;
    }
    super::write_atomically(path, svg.as_bytes())
}

/// Draws `curves` as lines with a legend into an SVG string.
pub(crate) fn svg_lines(axes: &Axes<'_>, curves: &[Curve]) -> Result<String, CliError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 420)).into_drawing_area();
        draw(&root, axes, curves)
            .and_then(|()| root.present().map_err(|e| e.to_string()))
            .map_err(|e| CliError::Output(format!("cannot draw {}: {e}", axes.caption)))?;
    }
    Ok(svg)
}

/// Grouped bars as an SVG string: for each of `categories` along x, one
/// bar per series (`(name, one value per category)`), with a legend.
pub(crate) fn svg_bars(
    caption: &str,
    x_desc: &str,
    y_desc: &str,
    categories: &[String],
    series: &[(String, Vec<f64>)],
) -> Result<String, CliError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 420)).into_drawing_area();
        draw_bars(&root, caption, x_desc, y_desc, categories, series)
            .and_then(|()| root.present().map_err(|e| e.to_string()))
            .map_err(|e| CliError::Output(format!("cannot draw {caption}: {e}")))?;
    }
    Ok(svg)
}

fn draw_bars<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    caption: &str,
    x_desc: &str,
    y_desc: &str,
    categories: &[String],
    series: &[(String, Vec<f64>)],
) -> Result<(), String> {
    let error = |e: &dyn std::fmt::Display| e.to_string();
    root.fill(&WHITE).map_err(|e| error(&e))?;
    let top = series
        .iter()
        .flat_map(|(_, values)| values.iter().copied())
        .fold(0.0f64, f64::max)
        .max(1.0)
        * 1.1;
    let count = categories.len().max(1);
    let mut chart = ChartBuilder::on(root)
        .caption(caption, CAPTION)
        .margin(14)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..count as f64, 0.0..top)
        .map_err(|e| error(&e))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style(LABELS)
        .axis_desc_style(LABELS)
        .draw()
        .map_err(|e| error(&e))?;
    // Each category's name under its middle.
    let style = TextStyle::from(LABELS.into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    for (index, category) in categories.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(index as f64 + 0.5, 0.0));
        root.draw(&Text::new(category.clone(), (x, y + 6), style.clone()))
            .map_err(|e| error(&e))?;
    }
    let width = 0.8 / series.len().max(1) as f64;
    for (index, (label, values)) in series.iter().enumerate() {
        let color = COLORS[index % COLORS.len()];
        let left = |category: usize| category as f64 + 0.1 + width * index as f64;
        chart
            .draw_series(values.iter().enumerate().map(|(category, &value)| {
                let x = left(category);
                Rectangle::new([(x, 0.0), (x + width, value)], color.filled())
            }))
            .map_err(|e| error(&e))?
            .label(label.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled()));
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)
}

/// The caption's font.
const CAPTION: (&str, u32) = ("sans-serif", 22);
/// The axes' labels and descriptions, and the legend's, readable at the
/// report's size.
const LABELS: (&str, u32) = ("sans-serif", 16);

/// Colours told apart easily, in turn (no pale yellow).
const COLORS: [RGBColor; 6] = [
    RGBColor(200, 60, 40),
    RGBColor(40, 110, 200),
    RGBColor(30, 150, 60),
    RGBColor(140, 60, 170),
    RGBColor(230, 130, 20),
    RGBColor(60, 60, 60),
];

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    axes: &Axes<'_>,
    curves: &[Curve],
) -> Result<(), String> {
    let error = |e: &dyn std::fmt::Display| e.to_string();
    root.fill(&WHITE).map_err(|e| error(&e))?;
    let mut chart = ChartBuilder::on(root)
        .caption(axes.caption, CAPTION)
        .margin(14)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(axes.x.clone(), axes.y.clone())
        .map_err(|e| error(&e))?;
    // Whole numbers where the axis counts whole things (hours, sites):
    // ticks only at whole values.
    let whole = |x: &f64| {
        if x.fract() == 0.0 {
            format!("{x:.0}")
        } else {
            String::new()
        }
    };
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(axes.x_desc)
        .y_desc(axes.y_desc)
        .label_style(LABELS)
        .axis_desc_style(LABELS);
    if axes.whole_x {
        mesh.x_label_formatter(&whole);
    }
    mesh.draw().map_err(|e| error(&e))?;
    for (index, (name, points)) in curves.iter().enumerate() {
        let color = COLORS[index % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| error(&e))?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight)
}

/// The series' legend, at `position`.
fn legend<'a, DB: DrawingBackend + 'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    position: SeriesLabelPosition,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(position)
        .label_font(LABELS)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())
}
