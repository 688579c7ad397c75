//! The original package's overlay: a multiplicative grey mask.

use crate::error::RenderError;

/// How the resized map becomes a mask.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaskScale {
    /// Multiply by a constant (the original uses 2 for ResNet, 1 for summed maps).
    Factor(f32),
    /// Divide by the map's maximum (the original's VGG `normalize`); an all-zero map stays
    /// zero instead of becoming NaN.
    DivideByMax,
}

/// Resizes a `w`×`h` map to `out_w`×`out_h` as OpenCV's `INTER_LINEAR` does (half-pixel
/// centres, edge clamped), which is what the original uses for its masks.
///
/// A `map` that does not hold `w`×`h` values (or holds none) is an error.
///
/// ```
/// let up = fmv_render::resize_map_bilinear(&[0.0, 1.0], 2, 1, 4, 1).unwrap();
/// assert_eq!(up, vec![0.0, 0.25, 0.75, 1.0]);
/// assert!(fmv_render::resize_map_bilinear(&[0.0, 1.0], 3, 1, 4, 1).is_err());
/// ```
pub fn resize_map_bilinear(
    map: &[f32],
    w: usize,
    h: usize,
    out_w: usize,
    out_h: usize,
) -> Result<Vec<f32>, RenderError> {
    check_map_shape(map, w, h)?;
    let axis = |n_in: usize, n_out: usize| -> Vec<(usize, usize, f32)> {
        let scale = n_in as f64 / n_out as f64;
        (0..n_out)
            .map(|o| {
                let src = ((o as f64 + 0.5) * scale - 0.5) as f32;
                let mut x0 = src.floor() as i64;
                let mut t = src - x0 as f32;
                if x0 < 0 {
                    x0 = 0;
                    t = 0.0;
                }
                if x0 >= n_in as i64 - 1 {
                    x0 = n_in as i64 - 1;
                    t = 0.0;
                }
                let x0 = x0 as usize;
                (x0, (x0 + 1).min(n_in - 1), t)
            })
            .collect()
    };
    let xs = axis(w, out_w);
    let ys = axis(h, out_h);
    let mut out = Vec::with_capacity(out_w * out_h);
    for &(y0, y1, ty) in &ys {
        for &(x0, x1, tx) in &xs {
            let top = map[y0 * w + x0] * (1.0 - tx) + map[y0 * w + x1] * tx;
            let bottom = map[y1 * w + x0] * (1.0 - tx) + map[y1 * w + x1] * tx;
            out.push(top * (1.0 - ty) + bottom * ty);
        }
    }
    Ok(out)
}

/// Draws a `map_w`×`map_h` feature map over `image`: the map is resized bilinearly to the
/// image, scaled, multiplied onto each RGB channel (values in `[0, 1]`), and clipped to
/// `[0, 1]`.
pub fn overlay(
    image: &image::RgbImage,
    map: &[f32],
    map_w: usize,
    map_h: usize,
    scale: MaskScale,
) -> Result<image::RgbImage, RenderError> {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let mut mask = resize_map_bilinear(map, map_w, map_h, w, h)?;
    match scale {
        MaskScale::Factor(f) => mask.iter_mut().for_each(|m| *m *= f),
        MaskScale::DivideByMax => {
            let max = mask.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            if max > 0.0 {
                mask.iter_mut().for_each(|m| *m /= max);
            } else {
                mask.iter_mut().for_each(|m| *m = 0.0);
            }
        }
    }
    let mut out = image.clone();
    for (px, m) in out.pixels_mut().zip(&mask) {
        for c in px.0.iter_mut() {
            let v = (*c as f32 / 255.0 * m).clamp(0.0, 1.0);
            *c = (v * 255.0).round() as u8;
        }
    }
    Ok(out)
}

/// Checks that `map` holds `w`×`h` values (and at least one).
pub(crate) fn check_map_shape(map: &[f32], w: usize, h: usize) -> Result<(), RenderError> {
    if map.len() != w * h || map.is_empty() {
        return Err(RenderError::MapShape {
            len: map.len(),
            width: w,
            height: h,
        });
    }
    Ok(())
}
