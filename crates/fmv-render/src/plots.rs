//! The figures: every channel's mean activation, the class sums, and rank's map frequencies.
//! Each takes plain data and renders to PNG or SVG ([`PlotFormat`]).

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::canvas::{Drawable, PlotFormat, encode, to_image};
use crate::colormap::class_colour;
use crate::error::RenderError;
use crate::font;
use crate::heatmap::format_value;

fn rgb([r, g, b]: [u8; 3]) -> RGBColor {
    RGBColor(r, g, b)
}

fn check_finite(what: &str, values: impl IntoIterator<Item = f32>) -> Result<(), RenderError> {
    if values.into_iter().any(|v| !v.is_finite()) {
        return Err(RenderError::Data(format!(
            "{what} holds NaN or infinite values"
        )));
    }
    Ok(())
}

/// `(lo, hi)` of `values` with 5 % headroom, never empty.
fn y_range(values: impl IntoIterator<Item = f32>) -> (f32, f32) {
    let (lo, hi) = values
        .into_iter()
        .fold((0.0f32, 0.0f32), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let pad = ((hi - lo) * 0.08).max(1e-6);
    (if lo < 0.0 { lo - pad } else { 0.0 }, hi + pad)
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Every channel's mean activation for one image, the top channels marked and numbered
/// (viz 2's second figure).
///
/// ```
/// use fmv_render::{MeanActivationPlot, PlotFormat};
/// let plot = MeanActivationPlot {
///     title: "coffee_3.png · layer4.1".into(),
///     means: vec![0.1, 0.8, 0.3, 0.05],
///     top: vec![1, 2],
/// };
/// let png = plot.render(PlotFormat::Png).unwrap();
/// assert_eq!(&png[1..4], b"PNG");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct MeanActivationPlot {
    /// The figure's title.
    pub title: String,
    /// Mean activation of each channel, in channel order.
    pub means: Vec<f32>,
    /// The channels to mark, most active first.
    pub top: Vec<usize>,
}

impl MeanActivationPlot {
    /// Renders the figure (640×300).
    pub fn render(&self, format: PlotFormat) -> Result<Vec<u8>, RenderError> {
        encode(self, format)
    }

    /// Renders the figure as an image.
    pub fn to_image(&self) -> Result<image::RgbImage, RenderError> {
        to_image(self)
    }

    fn validate_data(&self) -> Result<(), RenderError> {
        if self.means.is_empty() {
            return Err(RenderError::Data("no channels to plot".into()));
        }
        check_finite("the means", self.means.iter().copied())?;
        if let Some(&c) = self.top.iter().find(|&&c| c >= self.means.len()) {
            return Err(RenderError::Data(format!(
                "top channel {c} is out of range (the layer has {} channels)",
                self.means.len()
            )));
        }
        Ok(())
    }
}

impl Drawable for MeanActivationPlot {
    fn validate(&self) -> Result<(), RenderError> {
        self.validate_data()
    }

    fn size(&self) -> (u32, u32) {
        (640, 300)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(err)?;
        let n = self.means.len();
        let (lo, hi) = y_range(self.means.iter().copied());
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, font::text(15.0))
            .margin(10)
            .x_label_area_size(34)
            .y_label_area_size(52)
            .build_cartesian_2d(-0.5f32..n as f32 - 0.5, lo..hi)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(TRANSPARENT)
            .x_desc("channel")
            .y_desc("mean activation")
            .label_style(font::text(11.0))
            .axis_desc_style(font::text(12.0))
            .y_label_formatter(&|v| format_value(*v))
            .x_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(err)?;
        let grey = RGBColor(150, 150, 150);
        let half = 0.4f32;
        chart
            .draw_series(self.means.iter().enumerate().map(|(c, &m)| {
                Rectangle::new(
                    [(c as f32 - half, 0.0), (c as f32 + half, m)],
                    grey.filled(),
                )
            }))
            .map_err(err)?;
        let mark = rgb(class_colour(3));
        chart
            .draw_series(
                self.top
                    .iter()
                    .map(|&c| Circle::new((c as f32, self.means[c]), 3, mark.filled())),
            )
            .map_err(err)?;
        let label = font::text(10.0).pos(Pos::new(HPos::Center, VPos::Bottom));
        chart
            .draw_series(self.top.iter().map(|&c| {
                Text::new(
                    c.to_string(),
                    (c as f32, self.means[c] + (hi - lo) * 0.02),
                    label.clone(),
                )
            }))
            .map_err(err)?;
        Ok(())
    }
}

/// One panel of [`ClassSumsPlot`]: the sums of one class's top maps over every test image.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassSumsPanel {
    /// The class whose top maps were summed.
    pub map_class: String,
    /// `(true class index, summed activation)` for every test image.
    pub points: Vec<(usize, f32)>,
    /// How well the sums separate `map_class` from the rest (ROC AUC), if known.
    pub auc: Option<f64>,
}

/// Viz 5: per test image the summed activation of each class's top maps, one panel per
/// map class, one colour per true class, a legend, the separability in each panel's title.
///
/// ```
/// use fmv_render::{ClassSumsPanel, ClassSumsPlot, PlotFormat};
/// let plot = ClassSumsPlot {
///     title: "class sums · layer4".into(),
///     classes: vec!["cat".into(), "dog".into()],
///     panels: vec![ClassSumsPanel {
///         map_class: "cat".into(),
///         points: vec![(0, 3.0), (0, 2.5), (1, 0.4)],
///         auc: Some(1.0),
///     }],
/// };
/// assert!(plot.render(PlotFormat::Svg).is_ok());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ClassSumsPlot {
    /// The figure's title.
    pub title: String,
    /// The true classes' names; a point's class index points here.
    pub classes: Vec<String>,
    /// One panel per map class.
    pub panels: Vec<ClassSumsPanel>,
}

const PANEL_W: u32 = 300;
const PANEL_H: u32 = 260;
const LEGEND_H: u32 = 28;
const CAPTION_H: u32 = 28;

impl ClassSumsPlot {
    /// Renders the figure (300 px wide per panel, up to four panels a row).
    pub fn render(&self, format: PlotFormat) -> Result<Vec<u8>, RenderError> {
        encode(self, format)
    }

    /// Renders the figure as an image.
    pub fn to_image(&self) -> Result<image::RgbImage, RenderError> {
        to_image(self)
    }

    fn validate_data(&self) -> Result<(), RenderError> {
        if self.panels.is_empty() || self.classes.is_empty() {
            return Err(RenderError::Data("no classes to plot".into()));
        }
        for p in &self.panels {
            check_finite(
                &format!("the sums of {}", p.map_class),
                p.points.iter().map(|q| q.1),
            )?;
            if let Some(&(c, _)) = p.points.iter().find(|q| q.0 >= self.classes.len()) {
                return Err(RenderError::Data(format!(
                    "a point of {} has class index {c}, but there are {} classes",
                    p.map_class,
                    self.classes.len()
                )));
            }
        }
        Ok(())
    }

    fn columns(&self) -> usize {
        self.panels.len().min(4)
    }
}

impl Drawable for ClassSumsPlot {
    fn validate(&self) -> Result<(), RenderError> {
        self.validate_data()
    }

    fn size(&self) -> (u32, u32) {
        let rows = self.panels.len().div_ceil(self.columns()) as u32;
        (
            self.columns() as u32 * PANEL_W,
            CAPTION_H + rows * PANEL_H + LEGEND_H,
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(err)?;
        let (w, h) = self.size();
        let (caption, rest) = root.split_vertically(CAPTION_H);
        caption
            .draw_text(
                &self.title,
                &font::text(15.0).pos(Pos::new(HPos::Center, VPos::Center)),
                (w as i32 / 2, CAPTION_H as i32 / 2),
            )
            .map_err(err)?;
        let (panels, legend) = rest.split_vertically(h - CAPTION_H - LEGEND_H);
        let rows = self.panels.len().div_ceil(self.columns());
        let areas = panels.split_evenly((rows, self.columns()));
        for (panel, area) in self.panels.iter().zip(&areas) {
            // Images ordered by true class, then as given: x is the position in that order.
            let mut order: Vec<(usize, f32)> = panel.points.clone();
            order.sort_by_key(|p| p.0);
            let (lo, hi) = y_range(order.iter().map(|p| p.1));
            let title = match panel.auc {
                Some(auc) => format!("maps of {} · AUC {auc:.2}", panel.map_class),
                None => format!("maps of {}", panel.map_class),
            };
            let mut chart = ChartBuilder::on(area)
                .caption(title, font::text(13.0))
                .margin(8)
                .x_label_area_size(22)
                .y_label_area_size(44)
                .build_cartesian_2d(-0.5f32..order.len().max(1) as f32 - 0.5, lo..hi)
                .map_err(err)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .light_line_style(TRANSPARENT)
                .x_labels(0)
                .x_desc("test images, by true class")
                .label_style(font::text(10.0))
                .axis_desc_style(font::text(11.0))
                .y_label_formatter(&|v| format_value(*v))
                .draw()
                .map_err(err)?;
            chart
                .draw_series(order.iter().enumerate().map(|(x, &(c, y))| {
                    Circle::new((x as f32, y), 3, rgb(class_colour(c)).filled())
                }))
                .map_err(err)?;
        }
        // The legend: one swatch per true class, in a row.
        let style = font::text(12.0).pos(Pos::new(HPos::Left, VPos::Center));
        let mut x = 10i32;
        let y = LEGEND_H as i32 / 2;
        for (i, name) in self.classes.iter().enumerate() {
            legend
                .draw(&Circle::new((x + 5, y), 5, rgb(class_colour(i)).filled()))
                .map_err(err)?;
            legend.draw_text(name, &style, (x + 14, y)).map_err(err)?;
            let (tw, _) = legend.estimate_text_size(name, &style).map_err(err)?;
            x += 14 + tw as i32 + 18;
        }
        Ok(())
    }
}

/// One class's unique top maps and how often each was among an image's most active maps.
#[derive(Debug, Clone, PartialEq)]
pub struct RankedClass {
    /// The class name.
    pub name: String,
    /// `(channel, frequency)`, frequency as a fraction of the class's images in `[0, 1]`.
    pub maps: Vec<(usize, f32)>,
}

/// Rank's result as a bar chart: per class its unique top maps, bar height the fraction of
/// the class's images that had the map among their most active, the channel written on the
/// bar.
///
/// ```
/// use fmv_render::{PlotFormat, RankChart, RankedClass};
/// let chart = RankChart {
///     title: "rank · layer4.1".into(),
///     classes: vec![
///         RankedClass { name: "cat".into(), maps: vec![(12, 0.9), (40, 0.7)] },
///         RankedClass { name: "dog".into(), maps: vec![(3, 0.8)] },
///     ],
/// };
/// assert!(chart.render(PlotFormat::Png).is_ok());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RankChart {
    /// The figure's title.
    pub title: String,
    /// The classes, in order.
    pub classes: Vec<RankedClass>,
}

impl RankChart {
    /// Renders the chart (width grows with the number of bars).
    pub fn render(&self, format: PlotFormat) -> Result<Vec<u8>, RenderError> {
        encode(self, format)
    }

    /// Renders the chart as an image.
    pub fn to_image(&self) -> Result<image::RgbImage, RenderError> {
        to_image(self)
    }

    fn validate_data(&self) -> Result<(), RenderError> {
        if self.classes.is_empty() {
            return Err(RenderError::Data("no classes to plot".into()));
        }
        for c in &self.classes {
            check_finite(
                &format!("the frequencies of {}", c.name),
                c.maps.iter().map(|m| m.1),
            )?;
        }
        Ok(())
    }

    fn bars(&self) -> usize {
        self.classes
            .iter()
            .map(|c| c.maps.len().max(1))
            .sum::<usize>()
            + self.classes.len()
            - 1
    }
}

impl Drawable for RankChart {
    fn validate(&self) -> Result<(), RenderError> {
        self.validate_data()
    }

    fn size(&self) -> (u32, u32) {
        ((self.bars() as u32 * 22 + 90).max(360), 300)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(err)?;
        let n = self.bars() as f32;
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, font::text(15.0))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(48)
            .build_cartesian_2d(-0.5f32..n - 0.5, 0f32..1.12)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(TRANSPARENT)
            .x_labels(0)
            .y_desc("fraction of the class's images")
            .label_style(font::text(11.0))
            .axis_desc_style(font::text(12.0))
            .y_label_formatter(&|v| format!("{v:.1}"))
            .draw()
            .map_err(err)?;
        let on_bar = font::text(10.0).pos(Pos::new(HPos::Center, VPos::Bottom));
        let under = font::text(11.0).pos(Pos::new(HPos::Center, VPos::Top));
        let mut x = 0f32;
        for (i, class) in self.classes.iter().enumerate() {
            let colour = rgb(class_colour(i));
            let start = x;
            for &(channel, freq) in &class.maps {
                chart
                    .draw_series([Rectangle::new(
                        [(x - 0.38, 0.0), (x + 0.38, freq)],
                        colour.filled(),
                    )])
                    .map_err(err)?;
                chart
                    .draw_series([Text::new(
                        channel.to_string(),
                        (x, freq + 0.015),
                        on_bar.clone(),
                    )])
                    .map_err(err)?;
                x += 1.0;
            }
            if class.maps.is_empty() {
                x += 1.0;
            }
            let centre = (start + x - 1.0) / 2.0;
            let (px, _) = chart.backend_coord(&(centre, 0.0));
            let (_, py) = chart.backend_coord(&(centre, 0.0));
            root.draw_text(&class.name, &under, (px, py + 6))
                .map_err(err)?;
            x += 1.0; // a gap between classes
        }
        Ok(())
    }
}

/// One class's ablation: the drop of its logit with its own maps zeroed, with random sets of
/// as many maps, and with each of its maps alone.
#[derive(Debug, Clone, PartialEq)]
pub struct AblatedClass {
    /// The class name.
    pub name: String,
    /// The drop with the class's own maps zeroed.
    pub drop: f32,
    /// The drops with random sets zeroed.
    pub random: Vec<f32>,
    /// `(map, drop)` with each map alone zeroed.
    pub each: Vec<(usize, f32)>,
}

/// Ablation's result as a strip chart: per class, the drop of its logit when its own maps
/// are zeroed (a large coloured diamond), against the drops of random sets of as many maps
/// (grey dots) and of each of its maps alone (small coloured dots, numbered).
///
/// ```
/// use fmv_render::{AblatedClass, AblationChart, PlotFormat};
/// let chart = AblationChart {
///     title: "ablation · layer4.1".into(),
///     classes: vec![AblatedClass {
///         name: "cat".into(),
///         drop: 2.5,
///         random: vec![0.1, 0.4, -0.2],
///         each: vec![(12, 1.1), (40, 0.6)],
///     }],
/// };
/// assert!(chart.render(PlotFormat::Png).is_ok());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct AblationChart {
    /// The figure's title.
    pub title: String,
    /// The classes, in order.
    pub classes: Vec<AblatedClass>,
}

impl AblationChart {
    /// Renders the chart (width grows with the number of classes).
    pub fn render(&self, format: PlotFormat) -> Result<Vec<u8>, RenderError> {
        encode(self, format)
    }

    /// Renders the chart as an image.
    pub fn to_image(&self) -> Result<image::RgbImage, RenderError> {
        to_image(self)
    }

    fn values(&self) -> impl Iterator<Item = f32> + '_ {
        self.classes.iter().flat_map(|c| {
            std::iter::once(c.drop)
                .chain(c.random.iter().copied())
                .chain(c.each.iter().map(|e| e.1))
        })
    }
}

impl Drawable for AblationChart {
    fn validate(&self) -> Result<(), RenderError> {
        if self.classes.is_empty() {
            return Err(RenderError::Data("no classes to plot".into()));
        }
        check_finite("the drops", self.values())
    }

    fn size(&self) -> (u32, u32) {
        ((self.classes.len() as u32 * 150 + 110).max(380), 320)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(err)?;
        let n = self.classes.len() as f32;
        let (lo, hi) = y_range(self.values());
        let lo = lo.min(-(hi - lo) * 0.05);
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, font::text(15.0))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(56)
            .build_cartesian_2d(-0.5f32..n - 0.5, lo..hi)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_desc("drop of the class's mean logit")
            .label_style(font::text(11.0))
            .axis_desc_style(font::text(12.0))
            .y_label_formatter(&|v| format_value(*v))
            .draw()
            .map_err(err)?;
        chart
            .draw_series([PathElement::new(
                [(-0.5f32, 0f32), (n - 0.5, 0.0)],
                BLACK.mix(0.4),
            )])
            .map_err(err)?;
        let grey = RGBColor(150, 150, 150);
        let label = font::text(10.0).pos(Pos::new(HPos::Left, VPos::Center));
        let under = font::text(11.0).pos(Pos::new(HPos::Center, VPos::Top));
        for (i, class) in self.classes.iter().enumerate() {
            let x = i as f32;
            let colour = rgb(class_colour(i));
            // Random sets: a spread of grey dots left of the centre.
            let k = class.random.len().max(1) as f32;
            chart
                .draw_series(class.random.iter().enumerate().map(|(j, &d)| {
                    let dx = -0.32 + 0.18 * (j as f32 + 0.5) / k;
                    Circle::new((x + dx, d), 3, grey.filled())
                }))
                .map_err(err)?;
            // The class's own maps.
            chart
                .draw_series([
                    PathElement::new(
                        [(x - 0.08, class.drop), (x + 0.08, class.drop)],
                        colour.stroke_width(3),
                    ),
                    PathElement::new([(x, 0.0), (x, class.drop)], colour.stroke_width(2)),
                ])
                .map_err(err)?;
            chart
                .draw_series([Circle::new((x, class.drop), 6, colour.filled())])
                .map_err(err)?;
            // Each map alone, right of the centre.
            for (j, &(map, d)) in class.each.iter().enumerate() {
                let dx = 0.16 + 0.06 * (j % 3) as f32;
                chart
                    .draw_series([Circle::new((x + dx, d), 3, colour.mix(0.7).filled())])
                    .map_err(err)?;
                if class.each.len() <= 6 {
                    chart
                        .draw_series([Text::new(
                            map.to_string(),
                            (x + dx + 0.03, d),
                            label.clone(),
                        )])
                        .map_err(err)?;
                }
            }
            let (px, py) = chart.backend_coord(&(x, lo));
            root.draw_text(&class.name, &under, (px, py + 6))
                .map_err(err)?;
        }
        Ok(())
    }
}
