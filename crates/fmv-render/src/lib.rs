//! Pictures of feature maps, from plain data: it never depends on candle or on `fmv-core`, and
//! takes slices, sizes and labels.
//!
//! The principal function is [`overlay`], which draws a feature map over the image it came
//! from the way FeatureMapVisualizer does: the map is resized bilinearly to the image, scaled
//! (×2 for ResNet, ÷max for VGG), and multiplied onto each colour channel.
//!
//! ```
//! use fmv_render::{overlay, MaskScale};
//! let image = image::RgbImage::from_pixel(4, 4, image::Rgb([200, 100, 50]));
//! let map = [1.0f32; 4]; // a 2×2 map of ones
//! let out = overlay(&image, &map, 2, 2, MaskScale::Factor(0.5)).unwrap();
//! assert_eq!(out.get_pixel(0, 0).0, [100, 50, 25]);
//! ```

#![deny(clippy::print_stdout, clippy::print_stderr)]

mod overlay;

pub use overlay::{MaskScale, RenderError, overlay, resize_map_bilinear};
