//! The demo's tables: one row model per scenario (its columns and each
//! strategy's cells), rendered as text on the terminal and as HTML in the
//! report, so a column is written once.

use std::fmt::Write as _;

use lepton::sim::scenario::{
    DatacenterComparison, EdgeComparison, FleetComparison, HybridComparison, StrategyReport,
};

/// A column: its header on the terminal (short, with its width) and in the
/// report.
struct Column {
    text: &'static str,
    html: &'static str,
    width: usize,
}

const fn column(text: &'static str, html: &'static str, width: usize) -> Column {
    Column { text, html, width }
}

/// A scenario's table: one row per strategy, cells formatted once.
pub(crate) struct Table {
    columns: &'static [Column],
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Aligned columns, the first (the strategy) to the left.
    pub(crate) fn text(&self) -> String {
        let mut lines = vec![self.line(self.columns.iter().map(|c| c.text.to_owned()))];
        lines.extend(self.rows.iter().map(|row| self.line(row.iter().cloned())));
        lines.join("\n")
    }

    fn line(&self, cells: impl Iterator<Item = String>) -> String {
        let mut line = String::new();
        for (index, (cell, column)) in cells.zip(self.columns).enumerate() {
            let width = column.width;
            let _ = if index == 0 {
                write!(line, "{cell:<width$}")
            } else {
                write!(line, " {cell:>width$}")
            };
        }
        line
    }

    /// A `<table>` with a header row, its cells escaped.
    pub(crate) fn html(&self) -> String {
        let mut html = String::from("<table>\n<tr>");
        for column in self.columns {
            let _ = write!(html, "<th>{}</th>", column.html);
        }
        html.push_str("</tr>\n");
        for row in &self.rows {
            html.push_str("<tr>");
            for cell in row {
                let _ = write!(html, "<td>{}</td>", escape(cell));
            }
            html.push_str("</tr>\n");
        }
        html.push_str("</table>\n");
        html
    }
}

/// `text` safe inside HTML.
pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

const DATACENTER: &[Column] = &[
    column("strategy", "strategy", 34),
    column("util %", "utilization %", 8),
    column("cpu %", "CPU %", 6),
    column("mem %", "memory %", 6),
    column("gpu %", "GPU %", 6),
    column("cost $", "cost (USD)", 10),
    column("x bound", "cost over the lower bound", 8),
    column("VM-hours", "VM-hours", 9),
    column("misses", "deadline misses", 8),
    column("avoidable", "misses a scheduler could avoid", 9),
    column("late starts", "start-objective violations", 11),
    column("wait s", "mean wait (s)", 8),
    column("p95 wait s", "p95 wait (s)", 10),
    column("lost", "lost", 5),
];

/// The lower bound's line under a fleet scenario's table.
pub(crate) fn lower_bound<C>(result: &FleetComparison<C>) -> Option<String> {
    let what = if result.scenario == "hybrid" {
        "the owned VMs, then the cheapest mix of cloud VMs, holding each minute \
         what the tasks request started on arrival; no fragmentation, no start-up"
    } else {
        "the work on the cheapest mix of VMs, no fragmentation, no start-up, no idle time"
    };
    result
        .lower_bound_cost
        .map(|bound| format!("Lower bound: {bound:.0} USD ({what})."))
}

/// A strategy's cost over the scenario's lower bound.
fn over_bound<C>(result: &FleetComparison<C>, report: &StrategyReport) -> String {
    result.lower_bound_cost.map_or("-".to_owned(), |bound| {
        format!("{:.2}", report.cost / bound)
    })
}

/// Misses above the floor no scheduler can move.
fn avoidable(report: &StrategyReport) -> usize {
    report
        .deadline_misses
        .saturating_sub(report.unavoidable_misses)
}

/// The data center's strategies.
pub(crate) fn datacenter(result: &DatacenterComparison) -> Table {
    let rows = result
        .strategies()
        .map(|r| {
            vec![
                r.policy.clone(),
                format!("{:.1}", r.utilization_pct),
                format!("{:.1}", r.cpu_utilization_pct),
                format!("{:.1}", r.memory_utilization_pct),
                format!("{:.1}", r.gpu_utilization_pct),
                format!("{:.0}", r.cost),
                over_bound(result, r),
                format!("{:.0}", r.vm_hours),
                r.deadline_misses.to_string(),
                avoidable(r).to_string(),
                r.slo_violations.to_string(),
                format!("{:.0}", r.mean_wait_s),
                format!("{:.0}", r.p95_wait_s),
                r.lost.to_string(),
            ]
        })
        .collect();
    Table {
        columns: DATACENTER,
        rows,
    }
}

const EDGE: &[Column] = &[
    column("strategy", "strategy", 14),
    column("p95 ms", "p95 latency (ms)", 11),
    column("p95 interact. ms", "p95 interactive latency (ms)", 16),
    column("mean ms", "mean latency (ms)", 10),
    column("violations", "objective violations", 11),
    column("cloud $", "cloud cost (USD)", 8),
    column("site load cv", "edge site load CV", 12),
    column("wait s", "mean wait (s)", 8),
    column("lost", "lost", 5),
];

/// The edge scenario's strategies.
pub(crate) fn edge(result: &EdgeComparison) -> Table {
    let rows = result
        .strategies()
        .map(|r| {
            vec![
                r.policy.clone(),
                format!("{:.0}", r.p95_latency_ms),
                format!("{:.0}", r.p95_interactive_latency_ms),
                format!("{:.1}", r.mean_latency_ms),
                r.objective_violations.to_string(),
                format!("{:.0}", r.cost),
                r.site_load_cv_pct
                    .map_or("-".to_owned(), |cv| format!("{cv:.1}%")),
                format!("{:.1}", r.mean_wait_s),
                r.lost.to_string(),
            ]
        })
        .collect();
    Table {
        columns: EDGE,
        rows,
    }
}

const HYBRID: &[Column] = &[
    column("strategy", "strategy", 16),
    column("cost $", "cost (USD)", 10),
    column("x bound", "cost over the lower bound", 8),
    column("VM-hours", "VM-hours", 9),
    column("misses", "deadline misses", 8),
    column("avoidable", "misses a scheduler could avoid", 9),
    column("late starts", "start-objective violations", 11),
    column("wait s", "mean wait (s)", 8),
    column("revocations", "spot revocations", 12),
    column("lost work h", "work lost to revocations (h)", 11),
    column("lost", "lost", 5),
];

/// The hybrid cloud's strategies.
pub(crate) fn hybrid(result: &HybridComparison) -> Table {
    let rows = result
        .strategies()
        .map(|r| {
            vec![
                r.policy.clone(),
                format!("{:.0}", r.cost),
                over_bound(result, r),
                format!("{:.0}", r.vm_hours),
                r.deadline_misses.to_string(),
                avoidable(r).to_string(),
                r.slo_violations.to_string(),
                format!("{:.1}", r.mean_wait_s),
                r.revocations.to_string(),
                format!("{:.1}", r.lost_work_hours),
                r.lost.to_string(),
            ]
        })
        .collect();
    Table {
        columns: HYBRID,
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_html_show_the_same_cells() {
        const COLUMNS: &[Column] = &[column("name", "the name", 6), column("n", "number", 4)];
        let table = Table {
            columns: COLUMNS,
            rows: vec![
                vec!["a<b".into(), "12".into()],
                vec!["c".into(), "3".into()],
            ],
        };
        assert_eq!(table.text(), "name      n\na<b      12\nc         3");
        assert_eq!(
            table.html(),
            "<table>\n<tr><th>the name</th><th>number</th></tr>\n\
             <tr><td>a&lt;b</td><td>12</td></tr>\n<tr><td>c</td><td>3</td></tr>\n</table>\n"
        );
    }
}
