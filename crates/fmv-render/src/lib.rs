//! Pictures of feature maps, from plain data: it never depends on candle or on `fmv-core`, and
//! takes slices, sizes and labels.
//!
//! The principal function is [`overlay`], which draws a feature map over the image it came
//! from the way FeatureMapVisualizer does: the map is resized bilinearly to the image, scaled
//! (×2 for ResNet, ÷max for VGG), and multiplied onto each colour channel. [`heatmap`] draws
//! the same map as a viridis heat map with a colour bar, which most people read more easily.
//! [`grid`] lays titled pictures out; [`MeanActivationPlot`], [`ClassSumsPlot`] and
//! [`RankChart`] and [`AblationChart`] are the figures, as PNG or SVG ([`PlotFormat`]).
//!
//! All text is set in one embedded font (Liberation Sans, SIL Open Font License), never a
//! system font, so every machine draws the same pixels.
//!
//! ```
//! use fmv_render::{overlay, MaskScale};
//! let image = image::RgbImage::from_pixel(4, 4, image::Rgb([200, 100, 50]));
//! let map = [1.0f32; 4]; // a 2×2 map of ones
//! let out = overlay(&image, &map, 2, 2, MaskScale::Factor(0.5)).unwrap();
//! assert_eq!(out.get_pixel(0, 0).0, [100, 50, 25]);
//! ```

#![deny(clippy::print_stdout, clippy::print_stderr)]

mod canvas;
mod colormap;
mod compare;
mod error;
mod font;
mod grid;
mod heatmap;
mod mark;
mod overlay;
mod plots;

/// The `image` crate, whose `RgbImage` every function here takes and returns.
pub use image;

pub use canvas::{PlotFormat, png_bytes};
pub use colormap::{CLASS_COLOURS, class_colour, viridis};
pub use compare::{Tolerance, image_difference};
pub use error::RenderError;
pub use grid::{Tile, grid};
pub use heatmap::{HeatmapStyle, heatmap, with_colour_bar};
pub use mark::{cell_region, outline, with_caption};
pub use overlay::{MaskScale, overlay, resize_map_bilinear};
pub use plots::{
    AblatedClass, AblationChart, ClassSumsPanel, ClassSumsPlot, MeanActivationPlot, RankChart,
    RankedClass,
};
