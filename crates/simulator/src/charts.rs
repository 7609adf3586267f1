//! A run's charts — traffic, capacity, latency, cost — drawn with plotters into one SVG and
//! one PNG (four panels sharing the time axis, in hours).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::summary::{csv, Second};

/// The font every chart uses, registered once (ab_glyph renders it; no system fonts).
fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

/// Writes `seconds.csv`, `chart.svg` and `chart.png` into `dir` (created if needed).
pub fn write_charts(dir: &Path, title: &str, rows: &[Second]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("seconds.csv"), csv(rows))?;
    register_font();
    let size = (1200, 1000);
    let io = |e: String| std::io::Error::other(e);
    let (svg_path, png_path) = (dir.join("chart.svg"), dir.join("chart.png"));
    {
        let svg = SVGBackend::new(&svg_path, size).into_drawing_area();
        draw(&svg, title, rows).map_err(io)?;
        svg.present().map_err(|e| io(e.to_string()))?;
    }
    let png = BitMapBackend::new(&png_path, size).into_drawing_area();
    draw(&png, title, rows).map_err(io)?;
    png.present().map_err(|e| io(e.to_string()))?;
    Ok(())
}

type Series<'a> = (&'a str, RGBColor, Box<dyn Fn(&Second) -> f64 + 'a>);

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    rows: &[Second],
) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let root = root
        .titled(title, ("sans-serif", 22))
        .map_err(|e| e.to_string())?;
    let panels = root.split_evenly((4, 1));
    let hours = |r: &Second| r.t as f64 / 3600.0;
    let specs: Vec<(&str, Vec<Series<'_>>)> = vec![
        (
            "requests per second",
            vec![
                ("offered", BLUE, Box::new(|r: &Second| r.offered)),
                ("dropped", RED, Box::new(|r: &Second| r.dropped)),
            ],
        ),
        (
            "instances",
            vec![
                (
                    "desired",
                    BLACK,
                    Box::new(|r: &Second| f64::from(r.desired)),
                ),
                (
                    "serving",
                    GREEN,
                    Box::new(|r: &Second| f64::from(r.serving)),
                ),
            ],
        ),
        (
            "p99 latency (ms)",
            vec![("p99", MAGENTA, Box::new(|r: &Second| r.p99_ms))],
        ),
        (
            "dollars per hour",
            vec![("cost", CYAN, Box::new(|r: &Second| r.cost_per_hour))],
        ),
    ];
    let end = rows.last().map_or(1.0, hours).max(1.0 / 60.0);
    for (area, (label, series)) in panels.iter().zip(specs) {
        let top = series
            .iter()
            .flat_map(|(_, _, f)| rows.iter().map(f))
            .fold(0.0f64, f64::max)
            .max(1e-9)
            * 1.1;
        let mut chart = ChartBuilder::on(area)
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..end, 0.0..top)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("hours")
            .y_desc(label)
            .draw()
            .map_err(|e| e.to_string())?;
        for (name, color, f) in series {
            // At most ~2000 points per line: the SVG stays small for a day at 1 s steps.
            let step = (rows.len() / 2000).max(1);
            let points = rows.iter().step_by(step).map(|r| (hours(r), f(r)));
            chart
                .draw_series(LineSeries::new(points, color))
                .map_err(|e| e.to_string())?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
