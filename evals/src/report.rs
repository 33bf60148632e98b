//! Report output: the terminal table, `report.json` (stable keys), a self-contained
//! `report.html` a merchant can read, and the gates (thresholds and baseline comparison).

use std::fmt::Write as _;
use std::path::Path;

use crate::metrics::Metrics;
use crate::run::Report;

/// The rates shown and compared, with their report.json names. Higher is better for all.
fn rates(m: &Metrics) -> Vec<(&'static str, f64)> {
    vec![
        ("route_accuracy", m.route_accuracy),
        ("intent_accuracy", m.intent_accuracy),
        ("include_rate", m.include_rate),
        ("retrieval_hit_rate", m.retrieval_hit_rate),
        ("mrr", m.mrr),
        ("escalation_precision", m.escalation_precision),
        ("escalation_recall", m.escalation_recall),
        ("resolution_rate", m.resolution_rate),
    ]
}

pub fn terminal_table(report: &Report) -> String {
    let mut out = String::new();
    let mut columns: Vec<(&str, &Metrics, usize)> = report
        .suites
        .iter()
        .map(|s| (s.suite.as_str(), &s.metrics, s.turns))
        .collect();
    if report.suites.len() != 1 {
        columns.push(("all", &report.metrics, report.turns));
    }
    let _ = write!(out, "{:<22}", "metric");
    for (name, _, _) in &columns {
        let _ = write!(out, "{name:>14}");
    }
    out.push('\n');
    let _ = write!(out, "{:<22}", "turns");
    for (_, _, turns) in &columns {
        let _ = write!(out, "{turns:>14}");
    }
    out.push('\n');
    for (idx, (name, _)) in rates(&report.metrics).iter().enumerate() {
        let _ = write!(out, "{name:<22}");
        for (_, metrics, _) in &columns {
            let _ = write!(out, "{:>14.3}", rates(metrics)[idx].1);
        }
        out.push('\n');
    }
    type Column = (&'static str, fn(&Metrics) -> String);
    let counts: [Column; 5] = [
        ("exclude_violations", |m| m.exclude_violations.to_string()),
        ("unsupported_claims", |m| m.unsupported_claims.to_string()),
        ("max_segments", |m| m.max_segments.to_string()),
        ("latency_ms_p50", |m| format!("{:.1}", m.latency_ms_p50)),
        ("latency_ms_p99", |m| format!("{:.1}", m.latency_ms_p99)),
    ];
    for (name, value) in counts {
        let _ = write!(out, "{name:<22}");
        for (_, metrics, _) in &columns {
            let _ = write!(out, "{:>14}", value(metrics));
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "generator: {}; failing turns: {}; stages p50/p99 ms: {}",
        report.generator,
        report.failures.len(),
        report
            .latency_stages_ms
            .iter()
            .map(|s| format!("{} {:.1}/{:.1}", s.stage, s.p50, s.p99))
            .collect::<Vec<_>>()
            .join(", ")
    );
    out
}

pub fn write(report: &Report, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("report.json"), json)?;
    std::fs::write(dir.join("report.html"), html(report))?;
    Ok(())
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A single file, no scripts or external assets: bar charts as inline SVG.
pub fn html(report: &Report) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Parley eval: {}</title>\
<style>body{{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;padding:0 1rem;color:#222}}\
table{{border-collapse:collapse;width:100%;margin:1rem 0}}td,th{{border:1px solid #ddd;padding:.35rem .5rem;vertical-align:top;text-align:left}}\
th{{background:#f4f4f4}}.bad{{color:#a40000}}.muted{{color:#666;font-size:90%}}svg text{{font:13px system-ui,sans-serif}}</style></head><body>",
        escape(&report.suite)
    );
    let _ = write!(
        out,
        "<h1>Reply quality: {}</h1><p class=\"muted\">{} cases, {} turns · generator <b>{}</b> · prompts {}</p>",
        escape(&report.suite),
        report.cases,
        report.turns,
        escape(&report.generator),
        escape(&report.prompt_version)
    );
    let _ = write!(
        out,
        "<p>Resolution rate is the share of questions Parley should answer that it answered correctly: \
right route, every required fact present, nothing forbidden said. Escalation recall is the share of \
conversations that needed a person that reached one.</p>"
    );
    // Bar chart of the rates.
    let metrics = rates(&report.metrics);
    let height = 28 * metrics.len() + 10;
    let _ = write!(
        out,
        "<svg width=\"720\" height=\"{height}\" role=\"img\" aria-label=\"metrics\">"
    );
    for (idx, (name, value)) in metrics.iter().enumerate() {
        let y = 10 + idx * 28;
        let width = (value.clamp(0.0, 1.0) * 440.0).round();
        let color = if *value >= 0.9 {
            "#2e7d32"
        } else if *value >= 0.75 {
            "#f9a825"
        } else {
            "#c62828"
        };
        let _ = write!(
            out,
            "<text x=\"0\" y=\"{}\">{name}</text><rect x=\"190\" y=\"{y}\" width=\"440\" height=\"18\" fill=\"#eee\"/>\
<rect x=\"190\" y=\"{y}\" width=\"{width}\" height=\"18\" fill=\"{color}\"/><text x=\"640\" y=\"{}\">{:.1}%</text>",
            y + 14,
            y + 14,
            value * 100.0
        );
    }
    out.push_str("</svg>");
    let m = &report.metrics;
    let _ = write!(
        out,
        "<table><tr><th>Exclude violations</th><th>Unsupported claims caught</th><th>Max segments</th><th>Latency p50</th><th>Latency p99</th></tr>\
<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1} ms</td><td>{:.1} ms</td></tr></table>",
        m.exclude_violations, m.unsupported_claims, m.max_segments, m.latency_ms_p50, m.latency_ms_p99
    );
    if report.suites.len() > 1 {
        out.push_str("<h2>By suite</h2><table><tr><th>Suite</th><th>Turns</th>");
        for (name, _) in &metrics {
            let _ = write!(out, "<th>{name}</th>");
        }
        out.push_str("</tr>");
        for suite in &report.suites {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td>",
                escape(&suite.suite),
                suite.turns
            );
            for (_, value) in rates(&suite.metrics) {
                let _ = write!(out, "<td>{:.3}</td>", value);
            }
            out.push_str("</tr>");
        }
        out.push_str("</table>");
    }
    let _ = write!(out, "<h2>Failing turns ({})</h2>", report.failures.len());
    if report.failures.is_empty() {
        out.push_str("<p>None.</p>");
    } else {
        out.push_str(
            "<table><tr><th>Case</th><th>Customer said</th><th>Parley did</th><th>What was wrong</th><th>Retrieved</th></tr>",
        );
        for failure in &report.failures {
            let did = match (&failure.reply, &failure.escalation_reason) {
                (reply, Some(reason)) => format!(
                    "<b>{}</b> ({})<br>{}",
                    failure.route,
                    escape(reason),
                    escape(reply.as_deref().unwrap_or("(no text sent)"))
                ),
                (reply, None) => format!(
                    "<b>{}</b><br>{}",
                    failure.route,
                    escape(reply.as_deref().unwrap_or("(no text sent)"))
                ),
            };
            let _ = write!(
                out,
                "<tr><td>{}<br><span class=\"muted\">{} · turn {}</span></td><td>{}</td><td>{}</td><td class=\"bad\">{}</td><td class=\"muted\">{}</td></tr>",
                escape(&failure.case),
                escape(&failure.suite),
                failure.turn,
                escape(&failure.say),
                did,
                failure
                    .problems
                    .iter()
                    .map(|p| escape(p))
                    .collect::<Vec<_>>()
                    .join("<br>"),
                failure
                    .retrieved
                    .iter()
                    .map(|s| escape(s))
                    .collect::<Vec<_>>()
                    .join("<br>")
            );
        }
        out.push_str("</table>");
    }
    out.push_str("</body></html>\n");
    out
}

/// Thresholds and baseline comparison; each failure is a sentence saying which gate failed.
#[derive(Debug, Clone, Default)]
pub struct Gates {
    pub min_resolution: Option<f64>,
    pub min_escalation_recall: Option<f64>,
    /// `report.json` of an earlier run, and how far a rate may drop below it.
    pub baseline: Option<serde_json::Value>,
    pub tolerance: f64,
}

pub fn check_gates(report: &Report, gates: &Gates) -> Vec<String> {
    let mut failures = Vec::new();
    let m = &report.metrics;
    if let Some(min) = gates.min_resolution.filter(|min| m.resolution_rate < *min) {
        failures.push(format!(
            "resolution_rate {:.3} is below the minimum {min:.3}",
            m.resolution_rate
        ));
    }
    if let Some(min) = gates
        .min_escalation_recall
        .filter(|min| m.escalation_recall < *min)
    {
        failures.push(format!(
            "escalation_recall {:.3} is below the minimum {min:.3}",
            m.escalation_recall
        ));
    }
    if let Some(baseline) = &gates.baseline {
        for (name, value) in rates(m) {
            if let Some(old) = baseline.get(name).and_then(serde_json::Value::as_f64)
                && value < old - gates.tolerance
            {
                failures.push(format!(
                    "{name} fell to {value:.3} from the baseline's {old:.3} (tolerance {:.3})",
                    gates.tolerance
                ));
            }
        }
        let old_violations = baseline
            .get("exclude_violations")
            .and_then(serde_json::Value::as_u64);
        if let Some(old) = old_violations.filter(|old| m.exclude_violations as u64 > *old) {
            failures.push(format!(
                "exclude_violations rose to {} from the baseline's {old}",
                m.exclude_violations
            ));
        }
    }
    failures
}
