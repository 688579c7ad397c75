//! Pillow's antialiased resize of 8-bit images (`Image.resize(size, BILINEAR)` or `BICUBIC`),
//! bit for bit: separable passes with 22-bit fixed-point weights, the intermediate rounded to
//! `u8`, and Pillow 13's choice of which pass goes first.

/// Pillow's resampling filters that fmv uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interpolation {
    /// `Image.BILINEAR`: the triangle filter, support 1 (torchvision's default).
    #[default]
    Bilinear,
    /// `Image.BICUBIC`: Keys' cubic with `a = −0.5`, support 2 (timm's usual choice).
    Bicubic,
}

impl Interpolation {
    /// `bilinear` or `bicubic`.
    pub fn as_str(self) -> &'static str {
        match self {
            Interpolation::Bilinear => "bilinear",
            Interpolation::Bicubic => "bicubic",
        }
    }

    /// By name (`bilinear`, `bicubic`), as torchvision and timm write them.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "bilinear" => Some(Interpolation::Bilinear),
            "bicubic" => Some(Interpolation::Bicubic),
            _ => None,
        }
    }

    /// The filter's support at scale 1.
    fn support(self) -> f64 {
        match self {
            Interpolation::Bilinear => 1.0,
            Interpolation::Bicubic => 2.0,
        }
    }

    /// Pillow's `bilinear_filter` and `bicubic_filter`.
    fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Interpolation::Bilinear => {
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Interpolation::Bicubic => {
                const A: f64 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
        }
    }
}

/// Bits of the fixed-point weights (Pillow's `PRECISION_BITS = 32 - 8 - 2`).
const PRECISION_BITS: u32 = 22;

/// The taps of one output sample: the first input index and the fixed-point weights.
struct Taps {
    start: usize,
    weights: Vec<i32>,
}

/// Pillow's `precompute_coeffs`, then `normalize_coeffs_8bpc`.
fn coefficients(n_in: usize, n_out: usize, filter: Interpolation) -> Vec<Taps> {
    let scale = n_in as f64 / n_out as f64;
    let filter_scale = scale.max(1.0);
    let support = filter.support() * filter_scale;
    let inv = 1.0 / filter_scale;
    (0..n_out)
        .map(|o| {
            let center = (o as f64 + 0.5) * scale;
            // C's `(int)` truncates toward zero; the clamps make the sign irrelevant.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(n_in as i64) as usize;
            let mut w: Vec<f64> = (xmin..xmax)
                .map(|x| filter.weight((x as f64 - center + 0.5) * inv))
                .collect();
            let total: f64 = w.iter().sum();
            if total != 0.0 {
                w.iter_mut().for_each(|v| *v /= total);
            }
            let one = (1u32 << PRECISION_BITS) as f64;
            let weights = w
                .iter()
                .map(|&v| {
                    if v < 0.0 {
                        (-0.5 + v * one) as i32
                    } else {
                        (0.5 + v * one) as i32
                    }
                })
                .collect();
            Taps {
                start: xmin,
                weights,
            }
        })
        .collect()
}

#[inline]
fn clip8(acc: i32) -> u8 {
    if acc >= (1 << PRECISION_BITS << 8) {
        255
    } else if acc <= 0 {
        0
    } else {
        (acc >> PRECISION_BITS) as u8
    }
}

/// Resizes along x: `src` is `h` rows of `w_in` pixels of `ch` bytes.
fn horizontal(
    src: &[u8],
    w_in: usize,
    h: usize,
    ch: usize,
    w_out: usize,
    filter: Interpolation,
) -> Vec<u8> {
    let taps = coefficients(w_in, w_out, filter);
    let mut out = vec![0u8; w_out * h * ch];
    for y in 0..h {
        let row = &src[y * w_in * ch..(y + 1) * w_in * ch];
        let orow = &mut out[y * w_out * ch..(y + 1) * w_out * ch];
        for (o, t) in taps.iter().enumerate() {
            for c in 0..ch {
                let mut acc: i32 = 1 << (PRECISION_BITS - 1);
                for (j, &k) in t.weights.iter().enumerate() {
                    acc += row[(t.start + j) * ch + c] as i32 * k;
                }
                orow[o * ch + c] = clip8(acc);
            }
        }
    }
    out
}

/// Resizes along y: `src` is `h_in` rows of `w` pixels of `ch` bytes.
fn vertical(
    src: &[u8],
    w: usize,
    h_in: usize,
    ch: usize,
    h_out: usize,
    filter: Interpolation,
) -> Vec<u8> {
    let taps = coefficients(h_in, h_out, filter);
    let stride = w * ch;
    let mut out = vec![0u8; stride * h_out];
    for (o, t) in taps.iter().enumerate() {
        let orow = &mut out[o * stride..(o + 1) * stride];
        for (i, dst) in orow.iter_mut().enumerate() {
            let mut acc: i32 = 1 << (PRECISION_BITS - 1);
            for (j, &k) in t.weights.iter().enumerate() {
                acc += src[(t.start + j) * stride + i] as i32 * k;
            }
            *dst = clip8(acc);
        }
    }
    out
}

/// Resizes an interleaved 8-bit image of `ch` channels from `w_in`×`h_in` to `w_out`×`h_out`
/// exactly as Pillow 13 does with `Image.BILINEAR` (antialiased when shrinking): see
/// [`resize_pillow`].
///
/// # Panics
///
/// If `src` does not hold `w_in`×`h_in`×`ch` bytes (a caller's mistake, not bad input: fmv
/// passes the decoded image's own buffer).
///
/// ```
/// let src = vec![0u8; 640 * 480 * 3]; // RGB
/// let out = fmv_core::pixels::resize_bilinear_pillow(&src, 640, 480, 3, 224, 224);
/// assert_eq!(out.len(), 224 * 224 * 3);
/// ```
pub fn resize_bilinear_pillow(
    src: &[u8],
    w_in: usize,
    h_in: usize,
    ch: usize,
    w_out: usize,
    h_out: usize,
) -> Vec<u8> {
    resize_pillow(src, w_in, h_in, ch, w_out, h_out, Interpolation::Bilinear)
}

/// Resizes an interleaved 8-bit image of `ch` channels from `w_in`×`h_in` to `w_out`×`h_out`
/// exactly as Pillow 13's `Image.resize` does with `filter` (antialiased when shrinking).
///
/// Pass order: the vertical pass goes first when `h_in > h_out` and
/// `h_in − h_out > 2·(w_in − w_out)`, otherwise the horizontal one (measured on Pillow 13 for
/// 224×224 targets; older Pillow always went horizontal first). A pass whose size does not
/// change is skipped.
///
/// # Panics
///
/// If `src` does not hold `w_in`×`h_in`×`ch` bytes.
///
/// ```
/// use fmv_core::pixels::{Interpolation, resize_pillow};
/// let src = vec![128u8; 300 * 200 * 3];
/// let out = resize_pillow(&src, 300, 200, 3, 256, 170, Interpolation::Bicubic);
/// assert!(out.iter().all(|&v| v == 128)); // a flat image stays flat
/// ```
pub fn resize_pillow(
    src: &[u8],
    w_in: usize,
    h_in: usize,
    ch: usize,
    w_out: usize,
    h_out: usize,
    filter: Interpolation,
) -> Vec<u8> {
    assert_eq!(
        src.len(),
        w_in * h_in * ch,
        "buffer does not match its size"
    );
    let need_h = w_in != w_out;
    let need_v = h_in != h_out;
    let vertical_first =
        h_in > h_out && (h_in as i64 - h_out as i64) > 2 * (w_in as i64 - w_out as i64);
    match (need_h, need_v) {
        (false, false) => src.to_vec(),
        (true, false) => horizontal(src, w_in, h_in, ch, w_out, filter),
        (false, true) => vertical(src, w_in, h_in, ch, h_out, filter),
        (true, true) if vertical_first => {
            let tmp = vertical(src, w_in, h_in, ch, h_out, filter);
            horizontal(&tmp, w_in, h_out, ch, w_out, filter)
        }
        (true, true) => {
            let tmp = horizontal(src, w_in, h_in, ch, w_out, filter);
            vertical(&tmp, w_out, h_in, ch, h_out, filter)
        }
    }
}
