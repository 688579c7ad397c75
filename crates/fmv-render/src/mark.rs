//! Marks on pictures: the box around a map's most active place, and a caption above a figure.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::canvas::{Drawable, to_image};
use crate::error::RenderError;
use crate::font;

/// The pixels `(x0, y0, x1, y1)` (end exclusive) of an `image_w`×`image_h` picture that cell
/// `(y, x)` of an `map_h`×`map_w` map covers, the map stretched over the picture as the
/// overlays stretch it.
///
/// ```
/// assert_eq!(fmv_render::cell_region((1, 2), (14, 14), (224, 224)), (32, 16, 48, 32));
/// ```
pub fn cell_region(
    (y, x): (usize, usize),
    (map_h, map_w): (usize, usize),
    (image_w, image_h): (u32, u32),
) -> (u32, u32, u32, u32) {
    let at = |i: usize, n: usize, size: u32| (i as u64 * size as u64 / n.max(1) as u64) as u32;
    (
        at(x, map_w, image_w),
        at(y, map_h, image_h),
        at(x + 1, map_w, image_w).max(at(x, map_w, image_w) + 1),
        at(y + 1, map_h, image_h).max(at(y, map_h, image_h) + 1),
    )
}

/// Draws the outline of `(x0, y0, x1, y1)` (end exclusive) onto `img`, `thickness` pixels wide
/// inside the region's edge, clipped to the picture.
///
/// ```
/// let mut img = image::RgbImage::new(8, 8);
/// fmv_render::outline(&mut img, (2, 2, 6, 6), [255, 0, 0], 1);
/// assert_eq!(img.get_pixel(2, 4).0, [255, 0, 0]);
/// assert_eq!(img.get_pixel(4, 4).0, [0, 0, 0]);
/// ```
pub fn outline(
    img: &mut image::RgbImage,
    (x0, y0, x1, y1): (u32, u32, u32, u32),
    colour: [u8; 3],
    thickness: u32,
) {
    let (w, h) = img.dimensions();
    let (x1, y1) = (x1.min(w), y1.min(h));
    for y in y0..y1 {
        for x in x0..x1 {
            let edge = x < x0 + thickness
                || x + thickness >= x1
                || y < y0 + thickness
                || y + thickness >= y1;
            if edge {
                img.put_pixel(x, y, image::Rgb(colour));
            }
        }
    }
}

/// Height of a caption's band, in pixels.
const CAPTION_BAND: u32 = 26;

/// `img` under a one-line caption (13 px, on white).
///
/// ```
/// let img = image::RgbImage::new(200, 50);
/// let out = fmv_render::with_caption(&img, "features.28 · filter 384").unwrap();
/// assert_eq!(out.dimensions(), (200, 76));
/// ```
pub fn with_caption(img: &image::RgbImage, caption: &str) -> Result<image::RgbImage, RenderError> {
    let band = to_image(&Caption {
        width: img.width().max(1),
        text: caption.to_string(),
    })?;
    let mut out = image::RgbImage::from_pixel(
        img.width(),
        CAPTION_BAND + img.height(),
        image::Rgb([255; 3]),
    );
    image::imageops::replace(&mut out, &band, 0, 0);
    image::imageops::replace(&mut out, img, 0, CAPTION_BAND as i64);
    Ok(out)
}

struct Caption {
    width: u32,
    text: String,
}

impl Drawable for Caption {
    fn size(&self) -> (u32, u32) {
        (self.width, CAPTION_BAND)
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
    ) -> Result<(), String> {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let style = font::text(13.0).pos(Pos::new(HPos::Left, VPos::Center));
        root.draw_text(&self.text, &style, (8, (CAPTION_BAND / 2) as i32))
            .map_err(|e| e.to_string())
    }
}
