//! Where plots are drawn: an RGB bitmap (PNG) or an SVG document, both with the embedded font.

use plotters::coord::Shift;
use plotters::prelude::{BitMapBackend, DrawingArea, DrawingBackend, IntoDrawingArea, SVGBackend};

use crate::error::RenderError;
use crate::font;

/// The output format of a plot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlotFormat {
    /// A PNG file (the default).
    #[default]
    Png,
    /// An SVG document; the embedded font travels inside it, so text looks the same in
    /// every viewer.
    Svg,
}

impl PlotFormat {
    /// The file extension: `png` or `svg`.
    pub fn extension(self) -> &'static str {
        match self {
            PlotFormat::Png => "png",
            PlotFormat::Svg => "svg",
        }
    }
}

/// Something that can be drawn on any plotters backend.
pub(crate) trait Drawable {
    /// Width and height in pixels.
    fn size(&self) -> (u32, u32);
    /// Checks the data before anything is drawn (default: nothing to check).
    fn validate(&self) -> Result<(), RenderError> {
        Ok(())
    }
    /// Draws onto `root`, which is already filled white.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String>;
}

/// Draws `what` into an RGB image.
pub(crate) fn to_image(what: &impl Drawable) -> Result<image::RgbImage, RenderError> {
    what.validate()?;
    font::register();
    let (w, h) = what.size();
    let mut buf = vec![255u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        what.draw(&root).map_err(RenderError::Plot)?;
        root.present()
            .map_err(|e| RenderError::Plot(e.to_string()))?;
    }
    Ok(image::RgbImage::from_raw(w, h, buf).expect("the buffer is w × h × 3 bytes"))
}

/// Draws `what` into an SVG document with the font embedded as a data URL.
pub(crate) fn to_svg(what: &impl Drawable) -> Result<String, RenderError> {
    what.validate()?;
    font::register();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, what.size()).into_drawing_area();
        what.draw(&root).map_err(RenderError::Plot)?;
        root.present()
            .map_err(|e| RenderError::Plot(e.to_string()))?;
    }
    let style = format!(
        "<style>@font-face{{font-family:\"{}\";src:url(data:font/ttf;base64,{}) format(\"truetype\");}}</style>",
        font::FAMILY,
        base64(font::FONT_BYTES)
    );
    let at = svg.find('>').map(|i| i + 1).unwrap_or(0);
    svg.insert_str(at, &style);
    Ok(svg)
}

/// Encodes `what` in `format`: PNG bytes or SVG text.
pub(crate) fn encode(what: &impl Drawable, format: PlotFormat) -> Result<Vec<u8>, RenderError> {
    match format {
        PlotFormat::Png => png_bytes(&to_image(what)?),
        PlotFormat::Svg => Ok(to_svg(what)?.into_bytes()),
    }
}

/// An RGB image as PNG bytes.
pub fn png_bytes(img: &image::RgbImage) -> Result<Vec<u8>, RenderError> {
    use image::ImageEncoder;
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    let mut out = Vec::new();
    PngEncoder::new_with_quality(&mut out, CompressionType::Best, FilterType::Adaptive)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| RenderError::Plot(e.to_string()))?;
    Ok(out)
}

fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(super::base64(plain.as_bytes()), coded);
        }
    }
}
