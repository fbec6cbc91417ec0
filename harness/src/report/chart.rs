//! Stage 7, report (chart): `overhead.svg`, the overhead of each probe mode
//! by kernel, one panel per arch, drawn with plotters (pure: figures in,
//! SVG text out).

use anyhow::Result;
use plotters::prelude::*;

use crate::model::figures::Clock;
use crate::model::{Arch, CellResult};
use crate::overhead::MODES;

/// One bar: a kernel, a mode, an overhead.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub arch: Arch,
    pub kernel: String,
    pub mode: String,
    pub value: f64,
}

/// Colours per mode (report order, the baseline has no bar).
const PALETTE: &[RGBColor] = &[
    RGBColor(0x9e, 0xca, 0xe1),
    RGBColor(0x42, 0x92, 0xc6),
    RGBColor(0x08, 0x45, 0x94),
    RGBColor(0xe6, 0x55, 0x0d),
    RGBColor(0xfd, 0xae, 0x6b),
    RGBColor(0x31, 0xa3, 0x54),
    RGBColor(0x75, 0x6b, 0xb1),
    RGBColor(0x63, 0x63, 0x63),
];

fn colour(mode: &str) -> RGBColor {
    let i = MODES
        .iter()
        .filter(|m| **m != crate::overhead::BASELINE)
        .position(|m| *m == mode)
        .unwrap_or(0);
    PALETTE[i % PALETTE.len()]
}

/// The bars of `bench` on `clock`: every measured mode of every cell (pure).
pub fn bars(cells: &[CellResult], clock: Clock, bench: &str) -> Vec<Bar> {
    let mut out = Vec::new();
    for c in cells {
        let Some(f) = c.overhead.as_ref().and_then(|o| o.clock(clock)) else {
            continue;
        };
        for m in &f.modes {
            if let Some(v) = f.overhead(&m.mode, bench) {
                out.push(Bar {
                    arch: c.arch,
                    kernel: c.alias.clone(),
                    mode: m.mode.clone(),
                    value: v,
                });
            }
        }
    }
    out
}

/// Draws the bars as an SVG document: one panel per arch, kernels along x,
/// one bar per mode, overhead on a log scale (modes differ by 100x).
pub fn svg(bars: &[Bar], title: &str, unit: &str) -> Result<String> {
    let arches: Vec<Arch> = Arch::ALL
        .into_iter()
        .filter(|a| bars.iter().any(|b| b.arch == *a))
        .collect();
    let mut modes: Vec<&str> = MODES
        .iter()
        .copied()
        .filter(|m| bars.iter().any(|b| b.mode == *m))
        .collect();
    if modes.is_empty() {
        modes.push(crate::overhead::BASELINE);
    }
    let panels = arches.len().max(1);
    let (width, height) = (1100u32, 60 + 380 * panels as u32);
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, (width, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(title, ("sans-serif", 20))?;
        let areas = root.split_evenly((panels, 1));
        for (area, arch) in areas.iter().zip(&arches) {
            let mine: Vec<&Bar> = bars.iter().filter(|b| b.arch == *arch).collect();
            let mut kernels: Vec<&str> = Vec::new();
            for b in &mine {
                if !kernels.contains(&b.kernel.as_str()) {
                    kernels.push(&b.kernel);
                }
            }
            let max = mine.iter().map(|b| b.value).fold(10.0, f64::max);
            let y_top = 10f64.powf(max.log10().ceil() + 0.3);
            let mut chart = ChartBuilder::on(area)
                .caption(arch.name(), ("sans-serif", 18))
                .margin(12)
                .x_label_area_size(30)
                .y_label_area_size(70)
                // One empty slot after the kernels: the legend's, so it
                // never covers a bar.
                .build_cartesian_2d(0f64..(kernels.len() + 1) as f64, (1f64..y_top).log_scale())?;
            let labels = kernels.clone();
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels((kernels.len() + 1) * 2 + 1)
                .x_label_formatter(&|x| {
                    let i = x.floor() as usize;
                    if (x - i as f64 - 0.5).abs() < 1e-6 {
                        labels.get(i).map(|s| s.to_string()).unwrap_or_default()
                    } else {
                        String::new()
                    }
                })
                .y_desc(format!("overhead per unlink ({unit})"))
                .draw()?;
            let slot = 0.8 / modes.len() as f64;
            for (mi, mode) in modes.iter().enumerate() {
                let col = colour(mode);
                let rects: Vec<Rectangle<(f64, f64)>> = mine
                    .iter()
                    .filter(|b| b.mode == *mode && b.value > 0.0)
                    .filter_map(|b| {
                        let k = kernels.iter().position(|k| *k == b.kernel)? as f64;
                        let x0 = k + 0.1 + slot * mi as f64;
                        Some(Rectangle::new(
                            [(x0, 1.0), (x0 + slot * 0.9, b.value.max(1.0))],
                            col.filled(),
                        ))
                    })
                    .collect();
                chart
                    .draw_series(rects)?
                    .label(*mode)
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 12, y + 5)], col.filled())
                    });
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()?;
        }
        root.present()?;
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_panel_per_arch_one_bar_per_value() {
        let bars = vec![
            Bar {
                arch: Arch::X86_64,
                kernel: "bookworm".into(),
                mode: "kprobe".into(),
                value: 6000.0,
            },
            Bar {
                arch: Arch::X86_64,
                kernel: "sid".into(),
                mode: "fentry".into(),
                value: 300.0,
            },
            Bar {
                arch: Arch::Arm64,
                kernel: "bookworm".into(),
                mode: "kprobe".into(),
                value: 9000.0,
            },
        ];
        let svg = svg(&bars, "t", "instructions").expect("drawn");
        assert!(svg.starts_with("<svg"), "{}", &svg[..60.min(svg.len())]);
        for label in ["x86_64", "arm64", "bookworm", "sid", "kprobe", "fentry"] {
            assert!(svg.contains(&format!(">\n{label}\n</text>")), "no {label}");
        }
        let fill = |c: RGBColor| format!("fill=\"#{:02X}{:02X}{:02X}\"", c.0, c.1, c.2);
        // Three bars and two legend swatches of the kprobe colour... at least the bars.
        assert!(svg.matches(&fill(colour("kprobe"))).count() >= 2);
        assert!(svg.matches(&fill(colour("fentry"))).count() >= 1);
    }
}
