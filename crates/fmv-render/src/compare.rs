//! Comparing a drawn picture with a reference one, allowing the small differences that
//! antialiasing and float rounding make between machines.

/// How far two pictures may differ and still count as the same.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// Largest allowed difference of one channel of one pixel.
    pub channel: u8,
    /// Largest allowed fraction of pixels that differ by more than 1 in some channel.
    pub fraction: f64,
}

impl Default for Tolerance {
    /// 8 per channel, 0.2 % of the pixels: what fmv's golden images and gallery use.
    fn default() -> Self {
        Tolerance {
            channel: 8,
            fraction: 0.002,
        }
    }
}

/// Why `actual` is not `expected` within `tolerance`, or `None` when it is.
///
/// ```
/// use fmv_render::{Tolerance, image, image_difference};
/// let a = image::RgbImage::from_pixel(40, 40, image::Rgb([100, 100, 100]));
/// let mut b = a.clone();
/// b.put_pixel(0, 0, image::Rgb([103, 100, 100]));
/// assert!(image_difference(&a, &b, Tolerance::default()).is_none()); // one pixel in 1600, by 3
/// let strict = Tolerance { channel: 2, fraction: 0.0 };
/// assert!(image_difference(&a, &b, strict).is_some());
/// ```
pub fn image_difference(
    actual: &image::RgbImage,
    expected: &image::RgbImage,
    tolerance: Tolerance,
) -> Option<String> {
    if actual.dimensions() != expected.dimensions() {
        return Some(format!(
            "size {:?}, expected {:?}",
            actual.dimensions(),
            expected.dimensions()
        ));
    }
    let (mut worst, mut differing) = (0u8, 0usize);
    for (a, e) in actual.pixels().zip(expected.pixels()) {
        let d =
            a.0.iter()
                .zip(e.0)
                .map(|(&x, y)| x.abs_diff(y))
                .max()
                .unwrap_or(0);
        worst = worst.max(d);
        differing += usize::from(d > 1);
    }
    let fraction = differing as f64 / (actual.width() * actual.height()).max(1) as f64;
    (worst > tolerance.channel || fraction > tolerance.fraction).then(|| {
        format!(
            "max channel difference {worst}, {:.3} % of pixels differ",
            100.0 * fraction
        )
    })
}
