//! Heat-map overlays: the map in viridis blended over the image, with a colour bar.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::canvas::{Drawable, to_image};
use crate::colormap::viridis;
use crate::error::RenderError;
use crate::font;
use crate::overlay::{check_map_shape, resize_map_bilinear};

/// How a heat map is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeatmapStyle {
    /// Opacity of the colour over the image, in `[0, 1]`.
    pub alpha: f32,
    /// The value drawn brightest; `None` takes the map's maximum. Give the same value to
    /// several maps to make their colours comparable.
    pub max: Option<f32>,
    /// Whether to add a colour bar (with the range's ends written) at the right.
    pub colour_bar: bool,
}

impl Default for HeatmapStyle {
    fn default() -> Self {
        HeatmapStyle {
            alpha: 0.55,
            max: None,
            colour_bar: true,
        }
    }
}

/// Draws a `map_w`×`map_h` feature map over `image` as a heat map: the map is resized
/// bilinearly (as [`crate::overlay`] does), values from 0 to the maximum become viridis
/// colours, blended over the image with `style.alpha`. Negative values count as 0.
///
/// ```
/// use fmv_render::{heatmap, HeatmapStyle};
/// let image = image::RgbImage::from_pixel(8, 8, image::Rgb([128, 128, 128]));
/// let map = [0.0f32, 1.0, 2.0, 3.0];
/// let style = HeatmapStyle { colour_bar: false, ..HeatmapStyle::default() };
/// let out = heatmap(&image, &map, 2, 2, &style).unwrap();
/// assert_eq!(out.dimensions(), (8, 8));
/// ```
pub fn heatmap(
    image: &image::RgbImage,
    map: &[f32],
    map_w: usize,
    map_h: usize,
    style: &HeatmapStyle,
) -> Result<image::RgbImage, RenderError> {
    check_map_shape(map, map_w, map_h)?;
    if map.iter().any(|v| !v.is_finite()) {
        return Err(RenderError::Data(
            "the map holds NaN or infinite values".into(),
        ));
    }
    let (w, h) = (image.width() as usize, image.height() as usize);
    let resized = resize_map_bilinear(map, map_w, map_h, w, h)?;
    let max = style
        .max
        .unwrap_or_else(|| map.iter().copied().fold(0.0, f32::max));
    let alpha = style.alpha.clamp(0.0, 1.0);
    let mut out = image.clone();
    for (px, m) in out.pixels_mut().zip(&resized) {
        let t = if max > 0.0 { m.max(0.0) / max } else { 0.0 };
        let colour = viridis(t);
        for (c, v) in px.0.iter_mut().zip(colour) {
            *c = (*c as f32 * (1.0 - alpha) + v as f32 * alpha).round() as u8;
        }
    }
    if !style.colour_bar {
        return Ok(out);
    }
    with_colour_bar(&out, 0.0, max)
}

/// `image` with a vertical viridis colour bar for `[lo, hi]` at its right.
pub fn with_colour_bar(
    image: &image::RgbImage,
    lo: f32,
    hi: f32,
) -> Result<image::RgbImage, RenderError> {
    let bar = ColourBar {
        width: image.width() + 64,
        height: image.height().max(48),
        left: image.width() + 8,
        lo,
        hi,
    };
    let mut canvas = to_image(&bar)?;
    image::imageops::replace(&mut canvas, image, 0, 0);
    Ok(canvas)
}

struct ColourBar {
    width: u32,
    height: u32,
    left: u32,
    lo: f32,
    hi: f32,
}

impl Drawable for ColourBar {
    fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
    ) -> Result<(), String> {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (x0, x1) = (self.left as i32, self.left as i32 + 12);
        let (top, bottom) = (6i32, self.height as i32 - 6);
        for y in top..bottom {
            let t = (bottom - 1 - y) as f32 / (bottom - top - 1).max(1) as f32;
            let [r, g, b] = viridis(t);
            root.draw(&Rectangle::new(
                [(x0, y), (x1, y + 1)],
                RGBColor(r, g, b).filled(),
            ))
            .map_err(|e| e.to_string())?;
        }
        let style = font::text(11.0);
        for (value, y, v) in [(self.hi, top, VPos::Top), (self.lo, bottom, VPos::Bottom)] {
            let label = format_value(value);
            root.draw_text(&label, &style.pos(Pos::new(HPos::Left, v)), (x1 + 4, y))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// A number as plots label it: three significant digits.
pub(crate) fn format_value(v: f32) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(0.01..1000.0).contains(&a) {
        format!("{v:.2e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}
