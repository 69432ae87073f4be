//! The allocation curve of a fill experiment as an SVG (the FGD paper's
//! Figure 9a): GPU allocation % against arrived GPU request %, one line per
//! policy, each the mean over seeds.

use std::path::Path;

use lepton::sim::FillResult;
use plotters::prelude::*;

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

/// Writes the allocation curves to an SVG file.
pub(crate) fn write_svg(path: &Path, curves: &[Curve]) -> Result<(), CliError> {
    let x_max = curves
        .iter()
        .flat_map(|(_, points)| points.last().map(|p| p.0))
        .fold(100.0, f64::max);
    let axes = Axes {
        caption: "GPU allocation vs. arrived GPU request",
        x_desc: "arrived GPU request (% of capacity)",
        y_desc: "GPU allocation (% of capacity)",
        x: 0.0..x_max,
        y: 0.0..100.0,
    };
    draw_lines(path, &axes, curves)
}

/// A chart's caption, axis names and ranges.
pub(crate) struct Axes {
    pub(crate) caption: &'static str,
    pub(crate) x_desc: &'static str,
    pub(crate) y_desc: &'static str,
    pub(crate) x: std::ops::Range<f64>,
    pub(crate) y: std::ops::Range<f64>,
}

/// Draws `curves` as lines with a legend into an SVG file.
pub(crate) fn draw_lines(path: &Path, axes: &Axes, curves: &[Curve]) -> Result<(), CliError> {
    let draw_error = |e: &dyn std::fmt::Display| {
        CliError::Output(format!("cannot draw {}: {e}", path.display()))
    };
    let root = SVGBackend::new(path, (800, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_error(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(axes.caption, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(axes.x.clone(), axes.y.clone())
        .map_err(|e| draw_error(&e))?;
    chart
        .configure_mesh()
        .x_desc(axes.x_desc)
        .y_desc(axes.y_desc)
        .draw()
        .map_err(|e| draw_error(&e))?;
    for (index, (policy, points)) in curves.iter().enumerate() {
        let color = Palette99::pick(index).to_rgba();
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| draw_error(&e))?
            .label(policy.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| draw_error(&e))?;
    root.present().map_err(|e| draw_error(&e))?;
    Ok(())
}
