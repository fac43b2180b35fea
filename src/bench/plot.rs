//! Pictures of one run or of several side by side: the latency percentile spectrum and the
//! per-second throughput and p99. SVG, drawn with plotters.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use super::report::Report;

/// The spectrum's file name in the plot folder.
pub const SPECTRUM: &str = "latency.svg";
/// The timeline's file name in the plot folder.
pub const TIMELINE: &str = "timeline.svg";
/// The daemon's memory and open files (when the bench sampled them).
pub const DAEMON: &str = "daemon.svg";

/// Line colours, one per run.
const COLOURS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

/// The spectrum's x axis: `log10(1 / (1 - p))`, so that 90%, 99%, 99.9% ... are evenly spaced.
fn nines(percentile: f64) -> f64 {
    let tail = (1.0 - percentile / 100.0).max(1e-6);
    -tail.log10()
}

fn nines_label(x: f64) -> String {
    let p = 100.0 * (1.0 - 10f64.powf(-x));
    let digits = (x.round() as usize).saturating_sub(2);
    format!("{p:.digits$}%")
}

/// An axis label: whole numbers from 10 on.
fn number(v: f64) -> String {
    if v.abs() >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn failed(what: &str, e: impl std::fmt::Display) -> String {
    format!("drawing {what}: {e}")
}

/// Draws both pictures of `reports` into `dir`; returns the files written.
pub fn draw(reports: &[Report], dir: &Path) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let spectrum = dir.join(SPECTRUM);
    let timeline = dir.join(TIMELINE);
    draw_spectrum(reports, &spectrum)?;
    draw_timeline(reports, &timeline)?;
    let mut files = vec![spectrum, timeline];
    if reports.iter().any(|r| !r.daemon_samples.is_empty()) {
        let daemon = dir.join(DAEMON);
        draw_daemon(reports, &daemon)?;
        files.push(daemon);
    }
    Ok(files)
}

fn draw_spectrum(reports: &[Report], path: &Path) -> Result<(), String> {
    let what = "the latency spectrum";
    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(what, e))?;
    let points = |r: &Report| -> Vec<(f64, f64)> {
        r.spectrum
            .iter()
            .map(|&(p, v)| (nines(p), v.max(0.1)))
            .collect()
    };
    let x_max = reports
        .iter()
        .flat_map(|r| points(r).into_iter().map(|p| p.0))
        .fold(2.0f64, f64::max)
        .ceil();
    let (y_min, y_max) = reports
        .iter()
        .flat_map(|r| points(r).into_iter().map(|p| p.1))
        .fold((f64::MAX, 1.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let y_min = if y_min == f64::MAX { 0.1 } else { y_min * 0.8 };
    let mut chart = ChartBuilder::on(&root)
        .caption("Latency by percentile", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max, (y_min..y_max * 1.5).log_scale())
        .map_err(|e| failed(what, e))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (µs, log scale)")
        .x_labels(x_max as usize + 1)
        .x_label_formatter(&|x| nines_label(*x))
        .y_label_formatter(&|y| number(*y))
        .draw()
        .map_err(|e| failed(what, e))?;
    for (i, r) in reports.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        chart
            .draw_series(LineSeries::new(points(r), colour.stroke_width(2)))
            .map_err(|e| failed(what, e))?
            .label(r.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(|e| failed(what, e))?;
    root.present().map_err(|e| failed(what, e))
}

fn draw_timeline(reports: &[Report], path: &Path) -> Result<(), String> {
    let what = "the timeline";
    let root = SVGBackend::new(path, (900, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(what, e))?;
    let (top, bottom) = root.split_vertically(320);
    let seconds = reports
        .iter()
        .map(|r| r.timeline.len())
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let rate_max = reports
        .iter()
        .flat_map(|r| r.timeline.iter().map(|s| s.answers_per_sec))
        .fold(1.0f64, f64::max);
    let p99_max = reports
        .iter()
        .flat_map(|r| r.timeline.iter().map(|s| s.p99_us))
        .fold(1.0f64, f64::max);
    let panels = [
        (
            &top,
            "Throughput per second",
            "answers/s",
            rate_max,
            Box::new(|s: &super::report::Second| s.answers_per_sec) as Box<dyn Fn(_) -> f64>,
        ),
        (
            &bottom,
            "p99 latency per second",
            "p99 (µs)",
            p99_max,
            Box::new(|s: &super::report::Second| s.p99_us),
        ),
    ];
    for (area, caption, y_desc, y_max, value) in panels {
        let mut chart = ChartBuilder::on(area)
            .caption(caption, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(80)
            .build_cartesian_2d(0f64..seconds, 0f64..y_max * 1.1)
            .map_err(|e| failed(what, e))?;
        chart
            .configure_mesh()
            .x_desc("second of the run")
            .y_desc(y_desc)
            .y_label_formatter(&|y| number(*y))
            .draw()
            .map_err(|e| failed(what, e))?;
        for (i, r) in reports.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            // Each bucket drawn at its middle.
            let line: Vec<(f64, f64)> = r
                .timeline
                .iter()
                .map(|s| (s.second as f64 + 0.5, value(s)))
                .collect();
            chart
                .draw_series(LineSeries::new(line, colour.stroke_width(2)))
                .map_err(|e| failed(what, e))?
                .label(r.label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()
            .map_err(|e| failed(what, e))?;
    }
    root.present().map_err(|e| failed(what, e))
}

fn draw_daemon(reports: &[Report], path: &Path) -> Result<(), String> {
    let what = "the daemon's memory and files";
    let root = SVGBackend::new(path, (900, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(what, e))?;
    let (top, bottom) = root.split_vertically(320);
    let seconds = reports
        .iter()
        .flat_map(|r| r.daemon_samples.iter().map(|s| s.second))
        .fold(1.0f64, f64::max)
        .ceil();
    type Value = fn(&super::watch::Sample) -> f64;
    let panels: [(_, &str, &str, Value); 2] = [
        (&top, "Daemon resident memory", "MiB", |s| {
            s.rss_kib as f64 / 1024.0
        }),
        (&bottom, "Daemon open files", "file descriptors", |s| {
            s.fds as f64
        }),
    ];
    for (area, caption, y_desc, value) in panels {
        let y_max = reports
            .iter()
            .flat_map(|r| r.daemon_samples.iter().map(value))
            .fold(1.0f64, f64::max);
        let mut chart = ChartBuilder::on(area)
            .caption(caption, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(80)
            .build_cartesian_2d(0f64..seconds, 0f64..y_max * 1.2)
            .map_err(|e| failed(what, e))?;
        chart
            .configure_mesh()
            .x_desc("second of the run")
            .y_desc(y_desc)
            .y_label_formatter(&|y| number(*y))
            .draw()
            .map_err(|e| failed(what, e))?;
        for (i, r) in reports.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let line: Vec<(f64, f64)> = r
                .daemon_samples
                .iter()
                .map(|s| (s.second, value(s)))
                .collect();
            chart
                .draw_series(LineSeries::new(line, colour.stroke_width(2)))
                .map_err(|e| failed(what, e))?
                .label(r.label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()
            .map_err(|e| failed(what, e))?;
    }
    root.present().map_err(|e| failed(what, e))
}
