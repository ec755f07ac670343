//! `--plot FILE.svg`: latency over time (p50, p99 and max of each second)
//! above the percentile distribution of the whole run, drawn with plotters'
//! SVG backend (pure Rust, no fonts or system libraries needed).

use std::path::Path;

use hdrhistogram::Histogram;
use plotters::prelude::*;

use crate::stats::Report;

const WIDTH: u32 = 1000;
const HEIGHT: u32 = 900;

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Draws `hist` (and `per_second`, if any) into `path`.
pub fn draw(
    path: &Path,
    what: &str,
    hist: &Histogram<u64>,
    per_second: &[Histogram<u64>],
    report: &Report,
) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let title = format!(
        "strata-bench {}: {what} ({})",
        report.workload,
        report
            .params
            .iter()
            .filter(|(k, _)| matches!(*k, "partitions" | "message_size" | "rate" | "acks"))
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let root = root.titled(&title, ("sans-serif", 20))?;
    let (top, bottom) = root.split_vertically(HEIGHT / 2 - 20);

    // Over time.
    let points: Vec<(usize, f64, f64, f64)> = per_second
        .iter()
        .enumerate()
        .filter(|(_, h)| !h.is_empty())
        .map(|(i, h)| {
            (
                i,
                ms(h.value_at_quantile(0.5)),
                ms(h.value_at_quantile(0.99)),
                ms(h.max()),
            )
        })
        .collect();
    let seconds = points.last().map_or(1, |p| p.0 + 1).max(1);
    let top_y = points
        .iter()
        .map(|p| p.3)
        .fold(0.0f64, f64::max)
        .max(ms(hist.value_at_quantile(0.99)))
        .max(0.001)
        * 1.1;
    let mut chart = ChartBuilder::on(&top)
        .caption(
            format!("{what} per second after the warm-up"),
            ("sans-serif", 16),
        )
        .margin(15)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0usize..seconds, 0f64..top_y)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("ms")
        .draw()?;
    for (label, color, pick) in [("p50", BLUE, 1usize), ("p99", RED, 2), ("max", BLACK, 3)] {
        let series = points.iter().map(|p| {
            let v = match pick {
                1 => p.1,
                2 => p.2,
                _ => p.3,
            };
            (p.0, v)
        });
        chart
            .draw_series(LineSeries::new(series, color.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;

    // Percentile distribution, on a "nines" axis: x = -log10(1 - q), so
    // 90% is 1, 99% is 2, 99.9% is 3.
    let dist: Vec<(f64, f64)> = hist
        .iter_quantiles(5)
        .map(|v| {
            let q = v.quantile_iterated_to().min(0.999_999);
            (-(1.0 - q).log10(), ms(v.value_iterated_to()))
        })
        .collect();
    let max_x = dist.iter().map(|p| p.0).fold(1.0f64, f64::max).min(6.0);
    let max_y = ms(hist.max()).max(0.001) * 1.1;
    let mut chart = ChartBuilder::on(&bottom)
        .caption(
            format!("{what}: percentile distribution ({} samples)", hist.len()),
            ("sans-serif", 16),
        )
        .margin(15)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..max_x, 0f64..max_y)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("ms")
        .x_label_formatter(&|x| {
            let p = format!("{:.4}", 100.0 * (1.0 - 10f64.powf(-x)));
            format!("{}%", p.trim_end_matches('0').trim_end_matches('.'))
        })
        .draw()?;
    chart.draw_series(LineSeries::new(dist, BLUE.stroke_width(2)))?;
    root.present()?;
    Ok(())
}
