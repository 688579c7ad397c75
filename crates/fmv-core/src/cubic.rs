//! OpenCV's `resize(..., INTER_CUBIC)` on `f32` planes (Keys' kernel with a = −0.75, half-pixel
//! centres, edges clamped, horizontal pass then vertical), which the original uses to grow the
//! image between scales of activation maximisation.

const A: f32 = -0.75;

/// The four weights of OpenCV's `interpolateCubic` for the fraction `x`.
fn weights(x: f32) -> [f32; 4] {
    let w0 = ((A * (x + 1.0) - 5.0 * A) * (x + 1.0) + 8.0 * A) * (x + 1.0) - 4.0 * A;
    let w1 = ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let w2 = ((A + 2.0) * (1.0 - x) - (A + 3.0)) * (1.0 - x) * (1.0 - x) + 1.0;
    [w0, w1, w2, 1.0 - w0 - w1 - w2]
}

/// For each output index: the four (clamped) source indices and their weights.
fn taps(n_in: usize, n_out: usize) -> Vec<([usize; 4], [f32; 4])> {
    let scale = n_in as f64 / n_out as f64;
    (0..n_out)
        .map(|o| {
            let f = ((o as f64 + 0.5) * scale - 0.5) as f32;
            let x0 = f.floor();
            let w = weights(f - x0);
            let x0 = x0 as i64;
            let idx = [x0 - 1, x0, x0 + 1, x0 + 2].map(|i| i.clamp(0, n_in as i64 - 1) as usize);
            (idx, w)
        })
        .collect()
}

/// Resizes one `h`×`w` plane (row-major) to `oh`×`ow`.
///
/// # Panics
///
/// If `src` does not hold `h`×`w` values.
///
/// ```
/// let flat = vec![0.25f32; 5 * 5];
/// let out = fmv_core::pixels::resize_cubic_opencv(&flat, 5, 5, 6, 6);
/// assert!(out.iter().all(|v| (v - 0.25).abs() < 1e-6));
/// ```
pub fn resize_cubic_opencv(src: &[f32], h: usize, w: usize, oh: usize, ow: usize) -> Vec<f32> {
    assert_eq!(src.len(), h * w, "plane does not match its size");
    let tx = taps(w, ow);
    let ty = taps(h, oh);
    let mut rows = vec![0f32; h * ow];
    for y in 0..h {
        let row = &src[y * w..(y + 1) * w];
        for (x, (idx, wt)) in tx.iter().enumerate() {
            rows[y * ow + x] = row[idx[0]] * wt[0]
                + row[idx[1]] * wt[1]
                + row[idx[2]] * wt[2]
                + row[idx[3]] * wt[3];
        }
    }
    let mut out = vec![0f32; oh * ow];
    for (y, (idx, wt)) in ty.iter().enumerate() {
        for x in 0..ow {
            out[y * ow + x] = rows[idx[0] * ow + x] * wt[0]
                + rows[idx[1] * ow + x] * wt[1]
                + rows[idx[2] * ow + x] * wt[2]
                + rows[idx[3] * ow + x] * wt[3];
        }
    }
    out
}
