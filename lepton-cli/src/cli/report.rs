//! The demo's HTML report: one self-contained page (tables, inline SVG
//! plots, the results as JSON), viewable offline.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::plot::{svg_bars, svg_lines, Axes};
use super::table;
use super::CliError;
use lepton::sim::scenario::{DatacenterComparison, EdgeComparison, HybridComparison};
use lepton::sim::scenario::{EdgeReport, StrategyReport, TimelinePoint};
use lepton::sim::{LifetimeAccuracy, TraceLifetimes};

/// Creates `dir` if needed and checks it can be written, before any run.
pub(crate) fn check_out_dir(dir: &Path) -> Result<(), CliError> {
    std::fs::create_dir_all(dir)
        .and_then(|()| {
            let probe = dir.join(".lepton-write-check");
            std::fs::write(&probe, b"")?;
            std::fs::remove_file(&probe)
        })
        .map_err(|e| CliError::Output(format!("cannot write to {}: {e}", dir.display())))
}

/// The scenarios a demo ran.
pub(crate) struct Results<'a> {
    pub(crate) datacenter: Option<&'a DatacenterComparison>,
    pub(crate) trace: Option<&'a DatacenterComparison>,
    pub(crate) edge: Option<&'a EdgeComparison>,
    pub(crate) hybrid: Option<&'a HybridComparison>,
}

impl Results<'_> {
    /// The scenarios as a JSON array.
    pub(crate) fn json(&self) -> Result<serde_json::Value, CliError> {
        let encode =
            |e: serde_json::Error| CliError::Output(format!("cannot encode the results: {e}"));
        let mut all = Vec::new();
        for datacenter in [self.datacenter, self.trace].into_iter().flatten() {
            all.push(serde_json::to_value(datacenter).map_err(encode)?);
        }
        if let Some(edge) = self.edge {
            all.push(serde_json::to_value(edge).map_err(encode)?);
        }
        if let Some(hybrid) = self.hybrid {
            all.push(serde_json::to_value(hybrid).map_err(encode)?);
        }
        Ok(serde_json::Value::Array(all))
    }
}

/// Writes `dir/index.html` and returns its path.
pub(crate) fn write(dir: &Path, results: &Results<'_>) -> Result<PathBuf, CliError> {
    let mut body = String::new();
    for datacenter in [results.datacenter, results.trace].into_iter().flatten() {
        body.push_str(&section(datacenter)?);
    }
    if let Some(edge) = results.edge {
        body.push_str(&edge_section(edge)?);
    }
    if let Some(hybrid) = results.hybrid {
        body.push_str(&hybrid_section(hybrid)?);
    }
    let data = serde_json::to_string(&serde_json::json!({ "scenarios": results.json()? }))
        .map_err(|e| CliError::Output(format!("cannot encode the results: {e}")))?
        // Inside <script>, "</" would end the element.
        .replace("</", "<\\/");
    let page = format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Lepton: the article's scenarios</title>
<style>
body {{ font-family: sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #bbb; padding: 4px 10px; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
.plots {{ display: flex; flex-wrap: wrap; gap: 12px; }}
.plot svg {{ width: 100%; max-width: 720px; height: auto; border: 1px solid #ddd; }}
#headline {{ font-size: 1.2em; font-weight: bold; }}
</style>
</head>
<body>
<h1>Lepton: the article's scenarios</h1>
<p id="headline"></p>
{body}
<script type="application/json" id="results">{data}</script>
<script>
// The headline is written from the results embedded above.
const results = JSON.parse(document.getElementById("results").textContent);
const lines = results.scenarios.map(s => {{
  const lepton = s.strategies.find(x => x.role === "lepton");
  const baselines = s.strategies.filter(x => x.role === "baseline");
  return s.scenario === "edge"
    ? `edge: Lepton ${{lepton.objective_violations}} latency-objective violations and ` +
      `${{lepton.cost_usd.toFixed(0)}} USD of cloud, ` +
      baselines.map(b => `${{b.name}} ${{b.objective_violations}} and ${{b.cost_usd.toFixed(0)}} USD`).join(", ")
    : [s.lepton_vs_best_baseline, s.lepton_vs_baselines[0]]
      .filter((v, i, all) => i === 0 || v.baseline !== all[0].baseline).map(v =>
        `${{s.scenario}}: Lepton ${{v.cost_reduction_pct <= 0 ? "+" : ""}}${{(-v.cost_reduction_pct).toFixed(1)}}% cost, ` +
        `${{v.utilization_gain_pct >= 0 ? "+" : ""}}${{v.utilization_gain_pct.toFixed(1)}}% utilization against ${{v.baseline}}`
      ).join("; ");
}});
document.getElementById("headline").textContent = lines.join("; ");
</script>
</body>
</html>
"#
    );
    let path = dir.join("index.html");
    super::write_atomically(&path, page.as_bytes())?;
    Ok(path)
}

/// What a data center's run was, in a line.
pub(crate) fn describe(scenario: &DatacenterComparison) -> String {
    let size = &scenario.size;
    match size.window {
        Some(window) => format!(
            "Alibaba's DLRM serving trace (Yang et al., NSDI '25), days {}–{}: {} instances \
             on a pool of {} VMs, seed {}",
            window.first_day,
            window.first_day + size.hours.div_ceil(24) - 1,
            size.tasks,
            size.vms,
            scenario.seed
        ),
        None => format!(
            "{} VMs, {} tasks over {} hours, seed {}",
            size.vms, size.tasks, size.hours, scenario.seed
        ),
    }
}

fn section(scenario: &DatacenterComparison) -> Result<String, CliError> {
    let reports: Vec<&StrategyReport> = scenario.strategies().collect();
    let mut html = String::new();
    let _ = write!(
        html,
        "<h2>{}</h2>\n<p>{}. {}</p>\n",
        scenario.scenario,
        table::escape(&describe(scenario)),
        table::lower_bound(scenario).unwrap_or_default()
    );
    html.push_str(&table::datacenter(scenario).html());
    html.push_str("<div class=\"plots\">\n");
    let series = |f| timeline_curves(&reports, f);
    let plots = [
        (
            "Utilization of powered capacity",
            "%",
            series(|p| p.utilization_pct),
        ),
        ("Powered VMs", "VMs", series(|p| p.powered_vms as f64)),
        ("Cost so far", "USD", series(|p| p.cost)),
    ];
    for (title, unit, curves) in plots {
        let svg = line_plot(title, "hour", unit, &curves)?;
        let _ = writeln!(html, "<div class=\"plot\">{svg}</div>");
    }
    let svg = late_plot(&reports)?;
    let _ = writeln!(html, "<div class=\"plot\">{svg}</div>");
    let svg = demand_plot(&scenario.lepton)?;
    let _ = writeln!(html, "<div class=\"plot\">{svg}</div>");
    if let Some(lifetimes) = &scenario.lifetimes {
        let svg = lifetime_plot(lifetimes)?;
        let _ = writeln!(html, "<div class=\"plot\">{svg}</div>");
    }
    html.push_str("</div>\n");
    Ok(html)
}

/// Lepton's demand forecast against what came: the VMs taken into use
/// per hour, each minute forecast from the minutes before it; from the
/// second hour, the first taking up the tasks running when the run starts.
fn demand_plot(lepton: &StrategyReport) -> Result<String, CliError> {
    let hourly = |figure: fn(&TimelinePoint) -> f64| -> Vec<(f64, f64)> {
        let mut hours: Vec<(f64, f64)> = Vec::new();
        for point in lepton.timeline.iter().filter(|p| p.hour >= 1.0) {
            let hour = point.hour.floor();
            match hours.last_mut() {
                Some((last, sum)) if *last == hour => *sum += figure(point),
                _ => hours.push((hour, figure(point))),
            }
        }
        hours
    };
    let curves = [
        (
            "what came".to_owned(),
            hourly(|p| p.vms_taken_into_use as f64),
        ),
        (
            "forecast".to_owned(),
            hourly(|p| p.forecast_vms_taken_into_use),
        ),
    ];
    line_plot(
        &format!(
            "VMs taken into use by {}: forecast and what came",
            lepton.policy
        ),
        "hour",
        "VMs per hour",
        &curves,
    )
}

/// Predicted lifetimes against actual ones: the share of instances that
/// ended before each predicted quantile (90 %, 50 %, 10 % when
/// calibrated), learned per kind and one for all, with each one's median
/// error.
fn lifetime_plot(lifetimes: &TraceLifetimes) -> Result<String, CliError> {
    // The highest first, so the legend (upper right) covers no bar.
    let quantiles = ["p90", "p50", "p10"].map(str::to_owned);
    let shares = |a: &LifetimeAccuracy| {
        vec![
            a.below_p90 * 100.0,
            a.below_p50 * 100.0,
            a.below_p10 * 100.0,
        ]
    };
    let error = |a: &LifetimeAccuracy| a.median_abs_log_error.exp();
    let bars = [
        ("calibrated".to_owned(), vec![90.0, 50.0, 10.0]),
        (
            format!(
                "per service and shape (median error x{:.1})",
                error(&lifetimes.per_kind)
            ),
            shares(&lifetimes.per_kind),
        ),
        (
            format!(
                "one for all (median error x{:.1})",
                error(&lifetimes.one_for_all)
            ),
            shares(&lifetimes.one_for_all),
        ),
    ];
    svg_bars(
        &format!(
            "Lifetimes of {} instances from day {}: ended before the predicted",
            lifetimes.per_kind.predicted, lifetimes.from_day
        ),
        "predicted quantile",
        "% of instances",
        &quantiles,
        &bars,
    )
}

fn edge_section(scenario: &EdgeComparison) -> Result<String, CliError> {
    let c = &scenario.config;
    let reports: Vec<&EdgeReport> = scenario.strategies().collect();
    let mut html = String::new();
    let _ = write!(
        html,
        "<h2>edge</h2>\n<p>{} edge sites of {} nodes, {} cloud nodes, {} tasks over {} hours, seed {}; interactive tasks aim at 20 ms, batch at 150 ms.</p>\n",
        c.sites, c.nodes_per_site, c.cloud_nodes, c.tasks, c.hours, scenario.seed
    );
    html.push_str(&table::edge(scenario).html());
    html.push_str("<div class=\"plots\">\n");
    let sites = reports.first().map_or(0, |r| r.site_utilization_pct.len());
    let names: Vec<String> = (0..sites).map(|site| site.to_string()).collect();
    let bars: Vec<(String, Vec<f64>)> = reports
        .iter()
        .map(|r| (r.policy.clone(), r.site_utilization_pct.clone()))
        .collect();
    let svg = svg_bars(
        "CPU utilization of each edge site over the day",
        "edge site",
        "%",
        &names,
        &bars,
    )?;
    let _ = writeln!(html, "<div class=\"plot\">{svg}</div>");
    let svg = distribution_plot(
        "Latency: share of tasks within x",
        "latency (ms)",
        reports.iter().map(|r| (&r.policy, &r.latencies_ms[..])),
    )?;
    let _ = writeln!(html, "<div class=\"plot\">{svg}</div>\n</div>");
    Ok(html)
}

fn hybrid_section(scenario: &HybridComparison) -> Result<String, CliError> {
    let c = &scenario.config;
    let reports: Vec<&StrategyReport> = scenario.strategies().collect();
    let mut html = String::new();
    let _ = write!(
        html,
        "<h2>hybrid</h2>\n<p>{} owned VMs, {} on-demand and {} spot VMs in the cloud, {} tasks over {} hours, seed {}. {}</p>\n",
        c.owned_vms,
        c.on_demand_vms,
        c.spot_vms,
        c.tasks,
        c.hours,
        scenario.seed,
        table::lower_bound(scenario).unwrap_or_default()
    );
    html.push_str(&table::hybrid(scenario).html());
    html.push_str("<div class=\"plots\">\n");
    let series = |f| timeline_curves(&reports, f);
    for (title, unit, curves) in [
        ("Powered VMs", "VMs", series(|p| p.powered_vms as f64)),
        ("Cost so far", "USD", series(|p| p.cost)),
    ] {
        let svg = line_plot(title, "hour", unit, &curves)?;
        let _ = writeln!(html, "<div class=\"plot\">{svg}</div>");
    }
    html.push_str("</div>\n");
    Ok(html)
}

/// One curve per strategy of a timeline figure against the hour.
fn timeline_curves(
    reports: &[&StrategyReport],
    figure: fn(&TimelinePoint) -> f64,
) -> Vec<(String, Vec<(f64, f64)>)> {
    reports
        .iter()
        .map(|r| {
            let points = r.timeline.iter().map(|p| (p.hour, figure(p))).collect();
            (r.policy.clone(), points)
        })
        .collect()
}

/// Waits longer than these, minutes, in the late-start plot.
const LATE_MIN: [u64; 4] = [1, 3, 5, 10];

/// Bars: for each of [`LATE_MIN`], the share of each strategy's tasks that
/// waited longer (most wait not at all, so a distribution of the waits
/// would sit at 100 %).
fn late_plot(reports: &[&StrategyReport]) -> Result<String, CliError> {
    let names: Vec<String> = LATE_MIN.iter().map(|m| format!("> {m} min")).collect();
    let bars: Vec<(String, Vec<f64>)> = reports
        .iter()
        .map(|r| {
            let shares = LATE_MIN
                .iter()
                .map(|&m| {
                    let late = r.waits_s.iter().filter(|&&w| w > (m * 60) as f64).count();
                    late as f64 * 100.0 / r.waits_s.len().max(1) as f64
                })
                .collect();
            (r.policy.clone(), shares)
        })
        .collect();
    svg_bars(
        "Tasks that waited to start longer than",
        "wait",
        "% of tasks",
        &names,
        &bars,
    )
}

/// The cumulative distributions of each strategy's sorted values.
fn distribution_plot<'a>(
    title: &str,
    x_desc: &str,
    series: impl Iterator<Item = (&'a String, &'a [f64])>,
) -> Result<String, CliError> {
    let curves: Vec<(String, Vec<(f64, f64)>)> = series
        .map(|(name, sorted)| (name.clone(), distribution(sorted)))
        .collect();
    line_plot(title, x_desc, "% of tasks", &curves)
}

/// The cumulative distribution of sorted `values`, at most 200 points.
fn distribution(sorted: &[f64]) -> Vec<(f64, f64)> {
    let n = sorted.len();
    if n == 0 {
        return Vec::new();
    }
    let step = (n / 200).max(1);
    (0..n)
        .step_by(step)
        .chain(std::iter::once(n - 1))
        .map(|i| (sorted[i], (i + 1) as f64 * 100.0 / n as f64))
        .collect()
}

/// Lines with a legend, as an SVG string, the axes fitted to the data,
/// whole hours on x.
fn line_plot(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    curves: &[(String, Vec<(f64, f64)>)],
) -> Result<String, CliError> {
    let axes = Axes {
        whole_x: true,
        ..Axes::fitting(title, x_desc, y_desc, curves)
    };
    svg_lines(&axes, curves)
}
