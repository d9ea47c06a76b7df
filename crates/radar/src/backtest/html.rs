//! The HTML report: one self-contained file (no script, no network, the charts inline
//! SVG) that opens in any browser and can be mailed around: the summary, the figures per
//! group, and three charts — the score distribution by outcome, precision and recall
//! against the score threshold, and lead times. With `--compare`, both configurations
//! one after the other and the differences between them.

use std::fmt::Write;

use super::analysis::Figures;
use super::report::{self, Report, percent};

const HIT: &str = "#2a9d8f";
const MISS: &str = "#e76f51";
const RECALL: &str = "#264653";

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn number(value: Option<f64>, unit: &str) -> String {
    value.map_or("–".into(), |v| format!("{v:.2}{unit}"))
}

const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 48.0;
const BOTTOM: f64 = 36.0;
const TOP: f64 = 16.0;

/// The frame of a chart: axes, y ticks from 0 to `max`, x labels, a legend.
fn frame(
    out: &mut String,
    id: &str,
    title: &str,
    max: f64,
    labels: &[String],
    legend: &[(&str, &str)],
) {
    let _ = write!(
        out,
        r#"<figure><figcaption>{}</figcaption><svg class="chart" data-chart="{id}" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{}">"#,
        escape(title),
        escape(title)
    );
    let plot_h = HEIGHT - TOP - BOTTOM;
    for step in 0..=4 {
        let y = TOP + plot_h * (1.0 - f64::from(step) / 4.0);
        let value = max * f64::from(step) / 4.0;
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" font-size="10" text-anchor="end">{}</text>"##,
            WIDTH - 8.0,
            LEFT - 4.0,
            y + 3.0,
            if max <= 1.0 {
                format!("{:.0}%", value * 100.0)
            } else {
                format!("{value:.0}")
            }
        );
    }
    let slot = (WIDTH - LEFT - 8.0) / labels.len().max(1) as f64;
    for (i, label) in labels.iter().enumerate() {
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{}" font-size="10" text-anchor="middle">{}</text>"#,
            LEFT + slot * (i as f64 + 0.5),
            HEIGHT - BOTTOM + 14.0,
            escape(label)
        );
    }
    for (i, (name, color)) in legend.iter().enumerate() {
        let x = LEFT + 8.0 + 110.0 * i as f64;
        let _ = write!(
            out,
            r#"<rect class="legend" x="{x:.1}" y="{}" width="10" height="10" fill="{color}"/><text x="{:.1}" y="{}" font-size="11">{}</text>"#,
            HEIGHT - 14.0,
            x + 14.0,
            HEIGHT - 5.0,
            escape(name)
        );
    }
}

/// Grouped bars: one group per label, one bar per series.
fn bars(id: &str, title: &str, labels: &[String], series: &[(&str, &str, Vec<f64>)]) -> String {
    let max = series
        .iter()
        .flat_map(|(_, _, values)| values.iter().copied())
        .fold(0.0, f64::max)
        .max(1.0);
    let mut out = String::new();
    let legend: Vec<(&str, &str)> = series.iter().map(|(n, c, _)| (*n, *c)).collect();
    frame(&mut out, id, title, max, labels, &legend);
    let plot_h = HEIGHT - TOP - BOTTOM;
    let slot = (WIDTH - LEFT - 8.0) / labels.len().max(1) as f64;
    let bar = slot * 0.8 / series.len().max(1) as f64;
    for (s, (name, color, values)) in series.iter().enumerate() {
        for (i, value) in values.iter().enumerate() {
            let h = plot_h * value / max;
            let _ = write!(
                out,
                r#"<rect class="bar" x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{color}"><title>{}: {value}</title></rect>"#,
                LEFT + slot * i as f64 + slot * 0.1 + bar * s as f64,
                TOP + plot_h - h,
                bar,
                escape(name)
            );
        }
    }
    out.push_str("</svg></figure>");
    out
}

/// Lines over the labels, values from 0 to 1; missing values break the line.
fn lines(
    id: &str,
    title: &str,
    labels: &[String],
    series: &[(&str, &str, Vec<Option<f64>>)],
) -> String {
    let mut out = String::new();
    let legend: Vec<(&str, &str)> = series.iter().map(|(n, c, _)| (*n, *c)).collect();
    frame(&mut out, id, title, 1.0, labels, &legend);
    let plot_h = HEIGHT - TOP - BOTTOM;
    let slot = (WIDTH - LEFT - 8.0) / labels.len().max(1) as f64;
    for (name, color, values) in series {
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| {
                v.map(|v| {
                    format!(
                        "{:.1},{:.1}",
                        LEFT + slot * (i as f64 + 0.5),
                        TOP + plot_h * (1.0 - v)
                    )
                })
            })
            .collect();
        let _ = write!(
            out,
            r#"<polyline class="line" fill="none" stroke="{color}" stroke-width="2" points="{}"><title>{}</title></polyline>"#,
            points.join(" "),
            escape(name)
        );
        for point in &points {
            let (x, y) = point.split_once(',').unwrap_or_default();
            let _ = write!(out, r#"<circle cx="{x}" cy="{y}" r="3" fill="{color}"/>"#);
        }
    }
    out.push_str("</svg></figure>");
    out
}

fn charts(figures: &Figures) -> String {
    let score_labels: Vec<String> = figures
        .score_histogram
        .iter()
        .map(|b| format!("{:.0}–{:.0}", b.from, b.from + 10.0))
        .collect();
    let distribution = bars(
        "score-distribution",
        "Opportunities by score, followed by an expansion or not",
        &score_labels,
        &[
            (
                "expanded",
                HIT,
                figures
                    .score_histogram
                    .iter()
                    .map(|b| b.hits as f64)
                    .collect(),
            ),
            (
                "did not",
                MISS,
                figures
                    .score_histogram
                    .iter()
                    .map(|b| b.misses as f64)
                    .collect(),
            ),
        ],
    );
    let threshold_labels: Vec<String> = figures
        .thresholds
        .iter()
        .map(|t| format!("≥{:.0}", t.min_score))
        .collect();
    let thresholds = lines(
        "precision-recall",
        "Precision and recall of opportunities at or above a score",
        &threshold_labels,
        &[
            (
                "precision",
                HIT,
                figures.thresholds.iter().map(|t| t.precision).collect(),
            ),
            (
                "recall",
                RECALL,
                figures.thresholds.iter().map(|t| t.recall).collect(),
            ),
        ],
    );
    let lead_labels: Vec<String> = figures
        .lead_histogram
        .iter()
        .map(|b| format!("{}d", b.from_days))
        .collect();
    let leads = bars(
        "lead-times",
        "Lead time from opportunity to expansion (weeks)",
        &lead_labels,
        &[(
            "opportunities",
            HIT,
            figures
                .lead_histogram
                .iter()
                .map(|b| b.hits as f64)
                .collect(),
        )],
    );
    format!(r#"<div class="charts">{distribution}{thresholds}{leads}</div>"#)
}

fn section(title: &str, report: &Report) -> String {
    let f = &report.figures;
    let mut out = format!(
        "<section><h2>{}</h2><p class=\"summary\">{} events ({} processed) over {} accounts; {} expanded (base rate {}), {} expansions worth {:.0} ARR; horizon {} days.</p>",
        escape(title),
        report.events.read,
        report.events.processed,
        f.accounts,
        f.accounts_expanded,
        percent(f.base_rate),
        f.expansions,
        f.expansion_arr,
        f.horizon_days
    );
    out.push_str("<table><thead><tr><th>group</th><th>opportunities</th><th>precision</th><th>recall</th><th>lift</th><th>lead p50</th><th>lead p90</th><th>ARR caught</th></tr></thead><tbody>");
    for g in &f.groups {
        let name = match g.group {
            "tier" => format!("tier {}", g.name),
            _ => g.name.clone(),
        };
        let _ = write!(
            out,
            "<tr class=\"{}\"><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.0}</td></tr>",
            g.group,
            escape(&name),
            if g.shadow { " <em>(shadow)</em>" } else { "" },
            g.opportunities,
            percent(g.precision),
            percent(g.recall),
            number(g.lift, "×"),
            number(g.lead_days_median, " d"),
            number(g.lead_days_p90, " d"),
            g.arr_caught
        );
    }
    out.push_str("</tbody></table>");
    out.push_str(&charts(f));
    out.push_str("</section>");
    out
}

/// The whole page.
pub fn render(baseline: &Report, candidate: Option<&Report>) -> String {
    let mut body = String::new();
    match candidate {
        None => body.push_str(&section(
            &format!("Backtest of {}", baseline.config),
            baseline,
        )),
        Some(candidate) => {
            body.push_str(&section(&format!("A: {}", baseline.config), baseline));
            body.push_str(&section(&format!("B: {}", candidate.config), candidate));
            body.push_str("<section><h2>B − A</h2><table><thead><tr><th>group</th><th>opportunities</th><th>precision</th><th>recall</th><th>lift</th><th>ARR caught</th></tr></thead><tbody>");
            let signed = |v: Option<f64>, scale: f64, unit: &str| {
                v.map_or("–".into(), |v| format!("{:+.1}{unit}", v * scale))
            };
            for d in report::compare(baseline, candidate).difference {
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td>{:+}</td><td>{}</td><td>{}</td><td>{}</td><td>{:+.0}</td></tr>",
                    escape(&d.name),
                    d.opportunities,
                    signed(d.precision, 100.0, " pt"),
                    signed(d.recall, 100.0, " pt"),
                    signed(d.lift, 1.0, "×"),
                    d.arr_caught
                );
            }
            body.push_str("</tbody></table></section>");
        }
    }
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Radar backtest</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; margin: 1rem 0; }}
th, td {{ padding: .25rem .6rem; border-bottom: 1px solid #ddd; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
tr.all td {{ font-weight: 600; }}
.charts {{ display: flex; flex-wrap: wrap; gap: 1rem; }}
figure {{ margin: 0; }} figcaption {{ font-size: .9rem; margin-bottom: .25rem; }}
</style></head>
<body><h1>Radar backtest</h1>
<p>Precision: the share of opportunities followed by an expansion of their account within the horizon. Recall: the share of expansions an opportunity came before. Lift: precision over the base rate (the share of accounts that expanded).</p>
{body}
</body></html>
"#
    )
}
