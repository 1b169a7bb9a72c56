//! The `--plot` chart, written by hand: two panels sharing a time axis —
//! throughput (accepted/s, terminal/s; linear) above, p99 latency per second
//! (ack, submit-to-terminal; log scale, decade ticks) below.

use std::fmt::Write as _;

use super::SecondSample;

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 640.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 24.0;
const TOP1: f64 = 56.0;
const BOTTOM1: f64 = 300.0;
const TOP2: f64 = 360.0;
const BOTTOM2: f64 = 580.0;

const BLUE: &str = "#1f77b4";
const ORANGE: &str = "#ff7f0e";
const GREEN: &str = "#2ca02c";
const RED: &str = "#d62728";

/// Renders the series as an SVG document titled `title`.
pub fn render(series: &[SecondSample], title: &str) -> String {
    let mut s = String::with_capacity(16 * 1024);
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r#"<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="15">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );
    let seconds = series.len().max(1) as f64;
    let x = |t: f64| LEFT + (t / seconds) * (WIDTH - LEFT - RIGHT);

    // Panel 1: throughput, linear from 0.
    let max_rate = series
        .iter()
        .map(|p| p.accepted.max(p.terminal))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let (step, top) = nice_axis(max_rate);
    let y1 = |v: f64| BOTTOM1 - (v / top) * (BOTTOM1 - TOP1);
    frame(&mut s, TOP1, BOTTOM1, "messages / s");
    for i in 0..=((top / step).round() as u32) {
        let v = f64::from(i) * step;
        tick_y(&mut s, y1(v), &fmt_count(v));
    }
    let accepted: Vec<Option<(f64, f64)>> = series
        .iter()
        .enumerate()
        .map(|(i, p)| Some((x(i as f64 + 0.5), y1(p.accepted as f64))))
        .collect();
    let terminal: Vec<Option<(f64, f64)>> = series
        .iter()
        .enumerate()
        .map(|(i, p)| Some((x(i as f64 + 0.5), y1(p.terminal as f64))))
        .collect();
    polyline(&mut s, &accepted, BLUE);
    polyline(&mut s, &terminal, ORANGE);
    legend(
        &mut s,
        TOP1 - 12.0,
        &[(BLUE, "accepted/s"), (ORANGE, "terminal events/s")],
    );

    // Panel 2: p99 latency per second, log10 scale.
    let lat: Vec<f64> = series
        .iter()
        .flat_map(|p| [p.ack_p99_ms, p.terminal_p99_ms])
        .flatten()
        .filter(|v| *v > 0.0)
        .collect();
    let lo = lat
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .clamp(0.001, 1.0);
    let hi = lat.iter().copied().fold(0.0, f64::max).max(lo * 10.0);
    let (dlo, dhi) = (lo.log10().floor(), hi.log10().ceil());
    let y2 = |v: f64| {
        let l = v.max(10f64.powf(dlo)).log10();
        BOTTOM2 - (l - dlo) / (dhi - dlo) * (BOTTOM2 - TOP2)
    };
    frame(&mut s, TOP2, BOTTOM2, "p99 latency, ms (log)");
    for d in (dlo as i32)..=(dhi as i32) {
        let v = 10f64.powi(d);
        tick_y(&mut s, y2(v), &fmt_ms(v));
    }
    let ack: Vec<Option<(f64, f64)>> = series
        .iter()
        .enumerate()
        .map(|(i, p)| {
            p.ack_p99_ms
                .filter(|v| *v > 0.0)
                .map(|v| (x(i as f64 + 0.5), y2(v)))
        })
        .collect();
    let term: Vec<Option<(f64, f64)>> = series
        .iter()
        .enumerate()
        .map(|(i, p)| {
            p.terminal_p99_ms
                .filter(|v| *v > 0.0)
                .map(|v| (x(i as f64 + 0.5), y2(v)))
        })
        .collect();
    polyline(&mut s, &ack, GREEN);
    polyline(&mut s, &term, RED);
    legend(
        &mut s,
        TOP2 - 12.0,
        &[(GREEN, "ack p99"), (RED, "submit→terminal p99")],
    );

    // Shared time axis.
    let (tstep, _) = nice_axis(seconds);
    for i in 0..=((seconds / tstep).floor() as u32) {
        let t = f64::from(i) * tstep;
        let _ = writeln!(
            s,
            r##"<line x1="{0:.1}" y1="{BOTTOM1}" x2="{0:.1}" y2="{1}" stroke="#333"/><line x1="{0:.1}" y1="{BOTTOM2}" x2="{0:.1}" y2="{2}" stroke="#333"/><text x="{0:.1}" y="{3}" text-anchor="middle">{4}</text>"##,
            x(t),
            BOTTOM1 + 5.0,
            BOTTOM2 + 5.0,
            BOTTOM2 + 20.0,
            t
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">seconds since the first batch</text>"#,
        (LEFT + WIDTH - RIGHT) / 2.0,
        BOTTOM2 + 40.0
    );
    s.push_str("</svg>\n");
    s
}

/// Axes box of one panel with its y label.
fn frame(s: &mut String, top: f64, bottom: f64, label: &str) {
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{top}" width="{}" height="{}" fill="none" stroke="#333"/>"##,
        WIDTH - LEFT - RIGHT,
        bottom - top
    );
    let mid = (top + bottom) / 2.0;
    let _ = writeln!(
        s,
        r#"<text x="16" y="{mid}" text-anchor="middle" transform="rotate(-90 16 {mid})">{}</text>"#,
        escape(label)
    );
}

/// A y tick with a faint grid line.
fn tick_y(s: &mut String, y: f64, label: &str) {
    let _ = writeln!(
        s,
        r##"<line x1="{}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
        LEFT,
        WIDTH - RIGHT,
        LEFT - 6.0,
        y + 4.0,
        escape(label)
    );
}

/// Polylines through the points, broken where a point is missing.
fn polyline(s: &mut String, points: &[Option<(f64, f64)>], color: &str) {
    for run in points.split(Option::is_none) {
        if run.is_empty() {
            continue;
        }
        s.push_str(r#"<polyline fill="none" stroke-width="1.5" stroke=""#);
        s.push_str(color);
        s.push_str(r#"" points=""#);
        for (x, y) in run.iter().flatten() {
            let _ = write!(s, "{x:.1},{y:.1} ");
        }
        s.push_str("\"/>\n");
        if run.len() == 1 {
            let (x, y) = run[0].expect("non-empty run of Some");
            let _ = writeln!(
                s,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="2" fill="{color}"/>"#
            );
        }
    }
}

fn legend(s: &mut String, y: f64, items: &[(&str, &str)]) {
    let mut x = LEFT;
    for (color, label) in items {
        let _ = writeln!(
            s,
            r#"<line x1="{x}" y1="{0}" x2="{1}" y2="{0}" stroke="{color}" stroke-width="3"/><text x="{2}" y="{3}">{4}</text>"#,
            y,
            x + 20.0,
            x + 26.0,
            y + 4.0,
            escape(label)
        );
        x += 40.0 + 8.0 * label.chars().count() as f64;
    }
}

/// A tick step of 1, 2 or 5 × 10^k giving about five ticks, and the axis top
/// (a multiple of the step at or above `max`).
pub fn nice_axis(max: f64) -> (f64, f64) {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
        .max(if max >= 1.0 { 1.0 } else { 0.0 });
    let step = if step <= 0.0 { raw } else { step };
    (step, (max / step).ceil() * step)
}

/// `v` rounded to three decimals, without trailing zeros.
fn short(v: f64) -> String {
    format!("{}", (v * 1e3).round() / 1e3)
}

fn fmt_count(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", short(v / 1e6))
    } else if v >= 1e3 {
        format!("{}k", short(v / 1e3))
    } else {
        short(v)
    }
}

fn fmt_ms(v: f64) -> String {
    short(v)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
