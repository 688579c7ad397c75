//! The direct convolution on the CPU: im2col straight into one GEMM per image and group, on the
//! NCHW layout the networks already use, with the bias (and, where asked, the ReLU) applied in
//! the same pass; and the input gradient as the transposed GEMM plus col2im.
//!
//! The weights are used as stored (a `(c_out, c_in/groups, kh, kw)` tensor is already the
//! row-major `c_out × K` matrix the GEMM wants), a 1×1 stride-1 convolution reads its input in
//! place, and the unfolding is spread over the threads. Results do not depend on the thread
//! count: the GEMM splits the output, never the sum.

use std::ops::Range;

use rayon::prelude::*;

use crate::buffer::{filled_in_runs, zeroed};
use crate::float::{Float, relu_of};
use crate::geometry::ConvGeometry;
use crate::matmul::matmul;

/// Unfolds the output rows `oys` of one group of one image (`c × h × w`) into `col` (`c·kh·kw`
/// rows of `row_len`): row `(ci, ky, kx)`, column `offset + (oy − oys.start, ox)` holds
/// `x[ci, oy·s + ky − p, ox·s + kx − p]`, or 0 outside. `row_len` is the chunk's `|oys|·wo` for
/// one image, `n·ho·wo` for images side by side.
fn im2col<T: Float>(
    x: &[T],
    (h, w): (usize, usize),
    g: &ConvGeometry,
    col: &mut [T],
    (row_len, offset): (usize, usize),
    oys: Range<usize>,
) {
    let (_, wo) = g.out_hw(h, w).expect("checked by the caller");
    let (s, p) = (g.stride, g.padding);
    let taps = g.kh * g.kw;
    col.par_chunks_mut(row_len)
        .enumerate()
        .for_each(|(row, out)| {
            let out = &mut out[offset..offset + oys.len() * wo];
            let (ci, ky, kx) = (row / taps, row % taps / g.kw, row % g.kw);
            let plane = &x[ci * h * w..(ci + 1) * h * w];
            for (oy, out_row) in oys.clone().zip(out.chunks_mut(wo)) {
                let iy = (oy * s + ky) as isize - p as isize;
                if iy < 0 || iy >= h as isize {
                    out_row.fill(T::zero());
                    continue;
                }
                let src = &plane[iy as usize * w..(iy as usize + 1) * w];
                let (lo, hi) = valid_outputs(wo, w, kx, s, p);
                out_row[..lo].fill(T::zero());
                out_row[hi..].fill(T::zero());
                if s == 1 {
                    out_row[lo..hi].copy_from_slice(&src[lo + kx - p..hi + kx - p]);
                } else {
                    for (ox, v) in out_row[lo..hi].iter_mut().enumerate() {
                        *v = src[(lo + ox) * s + kx - p];
                    }
                }
            }
        });
}

/// The outputs `lo..hi` along an axis of `wo` whose input `o·s + k − p` lies inside `0..w`.
fn valid_outputs(wo: usize, w: usize, k: usize, s: usize, p: usize) -> (usize, usize) {
    // o·s + k ≥ p  ⇔  o ≥ ⌈(p − k)/s⌉;   o·s + k − p < w  ⇔  o < ⌈(w + p − k)/s⌉.
    let lo = p.saturating_sub(k).div_ceil(s).min(wo);
    let hi = (w + p).saturating_sub(k).div_ceil(s).clamp(lo, wo);
    (lo, hi)
}

/// The adjoint of [`im2col`] for the output rows `oys`: adds every entry of `col` back onto the
/// input position it came from. Each channel's rows are summed by one thread, so the order of
/// the sum is fixed. At stride 1 a row's entries land on a run of the input row, added as two
/// slices (which the compiler vectorises); the sums are the same, in the same order.
fn col2im<T: Float>(
    col: &[T],
    (h, w): (usize, usize),
    g: &ConvGeometry,
    dx: &mut [T],
    oys: Range<usize>,
) {
    let (_, wo) = g.out_hw(h, w).expect("checked by the caller");
    let (s, p) = (g.stride, g.padding);
    let taps = g.kh * g.kw;
    let len = oys.len() * wo;
    dx.par_chunks_mut(h * w)
        .enumerate()
        .for_each(|(ci, plane)| {
            for t in 0..taps {
                let (ky, kx) = (t / g.kw, t % g.kw);
                let rows = &col[(ci * taps + t) * len..][..len];
                for (oy, src) in oys.clone().zip(rows.chunks(wo)) {
                    let iy = (oy * s + ky) as isize - p as isize;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    let dst = &mut plane[iy as usize * w..(iy as usize + 1) * w];
                    let (lo, hi) = valid_outputs(wo, w, kx, s, p);
                    if lo == hi {
                        continue;
                    }
                    if s == 1 {
                        let run = &mut dst[lo + kx - p..hi + kx - p];
                        for (d, &v) in run.iter_mut().zip(&src[lo..hi]) {
                            *d += v;
                        }
                    } else {
                        for (ox, &v) in src[lo..hi].iter().enumerate() {
                            dst[(lo + ox) * s + kx - p] += v;
                        }
                    }
                }
            }
        });
}

/// Bytes of unfolded input (im2col) a convolution works in at most: it is unfolded a band of
/// output rows at a time (the stem of a ResNet at 986 px would otherwise take 143 MB, twice
/// over in a gradient step).
pub(crate) const COL_BYTES: usize = 24 << 20;

/// Output rows per band of at most `budget` bytes for `k` unfolded rows of `wo` columns of
/// `size`-byte values (at least one, at most `ho`).
fn chunk_rows(budget: usize, k: usize, wo: usize, ho: usize, size: usize) -> usize {
    (budget / (k * wo * size).max(1)).clamp(1, ho.max(1))
}

/// Output maps smaller than this many pixels are computed for the whole batch in one GEMM
/// (a GEMM a few dozen columns wide runs far below the ceiling).
const STACK_BELOW: usize = 1024;

/// `y = conv(x, w) + b`, then `max(y, 0)` when `relu`, for a contiguous NCHW batch.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward<T: Float>(
    x: &[T],
    (n, h, w): (usize, usize, usize),
    weight: &[T],
    bias: Option<&[T]>,
    g: &ConvGeometry,
    relu: bool,
    col_bytes: usize,
) -> Vec<T> {
    let (ho, wo) = g.out_hw(h, w).expect("checked by the caller");
    let (p_out, k) = (ho * wo, g.k());
    if n > 1 && g.groups == 1 && p_out < STACK_BELOW {
        return forward_stacked(x, (n, h, w), weight, bias, g, relu);
    }
    let (cin_g, cout_g) = (g.c_in / g.groups, g.c_out / g.groups);
    // The output starts as the bias, which the products are added to.
    let mut y = match bias {
        Some(bias) => filled_in_runs(n * g.c_out * p_out, p_out, |i| bias[i % g.c_out]),
        None => zeroed(n * g.c_out * p_out),
    };
    let rows_per_chunk = chunk_rows(col_bytes, k, wo, ho, std::mem::size_of::<T>());
    let mut col = if g.is_pointwise() {
        Vec::new()
    } else {
        zeroed(k * rows_per_chunk * wo)
    };
    for (b, y_b) in y.chunks_mut(g.c_out * p_out).enumerate() {
        for grp in 0..g.groups {
            let x_g = &x[(b * g.c_in + grp * cin_g) * h * w..][..cin_g * h * w];
            let w_g = &weight[grp * cout_g * k..][..cout_g * k];
            let y_g = &mut y_b[grp * cout_g * p_out..][..cout_g * p_out];
            if g.is_pointwise() {
                matmul(
                    y_g,
                    p_out,
                    bias.is_some(),
                    (cout_g, p_out, k),
                    w_g,
                    (k, 1),
                    x_g,
                    (p_out, 1),
                );
                continue;
            }
            // The unfolded input a band of output rows at a time, so that it stays small.
            for oy0 in (0..ho).step_by(rows_per_chunk) {
                let oys = oy0..(oy0 + rows_per_chunk).min(ho);
                let cols = oys.len() * wo;
                let col = &mut col[..k * cols];
                im2col(x_g, (h, w), g, col, (cols, 0), oys);
                matmul(
                    &mut y_g[oy0 * wo..],
                    p_out,
                    bias.is_some(),
                    (cout_g, cols, k),
                    w_g,
                    (k, 1),
                    col,
                    (cols, 1),
                );
            }
        }
        if relu {
            y_b.par_chunks_mut(4096).for_each(|c| {
                for v in c {
                    *v = relu_of(*v);
                }
            });
        }
    }
    y
}

/// [`forward`] with the images side by side: the unfolded batch is one `k × n·ho·wo` matrix and
/// the output one `c_out × n·ho·wo` matrix, put back in NCHW order at the end (ungrouped).
fn forward_stacked<T: Float>(
    x: &[T],
    (n, h, w): (usize, usize, usize),
    weight: &[T],
    bias: Option<&[T]>,
    g: &ConvGeometry,
    relu: bool,
) -> Vec<T> {
    let (ho, wo) = g.out_hw(h, w).expect("checked by the caller");
    let (p_out, k) = (ho * wo, g.k());
    let wide = n * p_out;
    let mut col = zeroed(k * wide);
    for b in 0..n {
        let x_b = &x[b * g.c_in * h * w..][..g.c_in * h * w];
        im2col(x_b, (h, w), g, &mut col, (wide, b * p_out), 0..ho);
    }
    let mut stacked = match bias {
        Some(bias) => filled_in_runs(g.c_out * wide, wide, |co| bias[co]),
        None => zeroed(g.c_out * wide),
    };
    matmul(
        &mut stacked,
        wide,
        bias.is_some(),
        (g.c_out, wide, k),
        weight,
        (k, 1),
        &col,
        (wide, 1),
    );
    let mut y = zeroed(n * g.c_out * p_out);
    y.par_chunks_mut(p_out).enumerate().for_each(|(i, plane)| {
        let (b, co) = (i / g.c_out, i % g.c_out);
        let src = &stacked[co * wide + b * p_out..][..p_out];
        for (v, &s) in plane.iter_mut().zip(src) {
            *v = if relu { relu_of(s) } else { s };
        }
    });
    y
}

/// `dx = convᵀ(dy, w)` for a contiguous NCHW `dy`: per image and group, `Wᵀ·dy` then col2im.
pub(crate) fn input_grad<T: Float>(
    dy: &[T],
    (n, h, w): (usize, usize, usize),
    weight: &[T],
    g: &ConvGeometry,
    col_bytes: usize,
) -> Vec<T> {
    let (ho, wo) = g.out_hw(h, w).expect("checked by the caller");
    let (p_out, k) = (ho * wo, g.k());
    let (cin_g, cout_g) = (g.c_in / g.groups, g.c_out / g.groups);
    let mut dx = zeroed(n * g.c_in * h * w);
    let rows_per_chunk = chunk_rows(col_bytes, k, wo, ho, std::mem::size_of::<T>());
    let mut col = if g.is_pointwise() {
        Vec::new()
    } else {
        zeroed(k * rows_per_chunk * wo)
    };
    for (b, dx_b) in dx.chunks_mut(g.c_in * h * w).enumerate() {
        for grp in 0..g.groups {
            let dy_g = &dy[(b * g.c_out + grp * cout_g) * p_out..][..cout_g * p_out];
            let w_g = &weight[grp * cout_g * k..][..cout_g * k];
            let dx_g = &mut dx_b[grp * cin_g * h * w..][..cin_g * h * w];
            // Wᵀ is w_g read with its strides swapped.
            if g.is_pointwise() {
                matmul(
                    dx_g,
                    p_out,
                    false,
                    (k, p_out, cout_g),
                    w_g,
                    (1, k),
                    dy_g,
                    (p_out, 1),
                );
                continue;
            }
            for oy0 in (0..ho).step_by(rows_per_chunk) {
                let oys = oy0..(oy0 + rows_per_chunk).min(ho);
                let cols = oys.len() * wo;
                let col = &mut col[..k * cols];
                matmul(
                    col,
                    cols,
                    false,
                    (k, cols, cout_g),
                    w_g,
                    (1, k),
                    &dy_g[oy0 * wo..],
                    (p_out, 1),
                );
                col2im(col, (h, w), g, dx_g, oys);
            }
        }
    }
    dx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_data::{random, slice_bits};
    use candle_core::Tensor;

    /// col2im adds each entry onto the input it was unfolded from, in the order of an
    /// element-by-element scatter (taps, then output rows, then columns), so the sums are the
    /// same bit for bit: at stride 1 (whose rows are added as slices) and 2, with paddings
    /// that leave some taps no output inside a row (the 7×7 kernel on a map one pixel wide),
    /// for a band of rows and the whole map.
    #[test]
    fn col2im_adds_each_entry_where_im2col_took_it() {
        let c_in = 2;
        // (k, stride, padding, h, w)
        for (k, s, p, h, w) in [
            (3, 1, 0, 7, 9),
            (3, 1, 1, 7, 9),
            (3, 1, 2, 7, 9),
            (5, 1, 2, 7, 9),
            (5, 1, 4, 7, 9),
            (3, 2, 1, 7, 9),
            (7, 1, 3, 7, 1),
        ] {
            let g = ConvGeometry {
                c_in,
                c_out: 1,
                kh: k,
                kw: k,
                stride: s,
                padding: p,
                groups: 1,
            };
            let (ho, wo) = g.out_hw(h, w).unwrap();
            let taps = k * k;
            for oys in [0..ho, 1..ho.min(3)] {
                let len = oys.len() * wo;
                let col: Vec<f32> = random(&[c_in * taps * len], (k * 10 + p) as u64)
                    .to_dtype(candle_core::DType::F32)
                    .unwrap()
                    .to_vec1()
                    .unwrap();
                let mut expected = vec![0f32; c_in * h * w];
                for ci in 0..c_in {
                    for t in 0..taps {
                        let (ky, kx) = (t / k, t % k);
                        for (r, oy) in oys.clone().enumerate() {
                            for ox in 0..wo {
                                let iy = (oy * s + ky) as isize - p as isize;
                                let ix = (ox * s + kx) as isize - p as isize;
                                if (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix) {
                                    expected[(ci * h + iy as usize) * w + ix as usize] +=
                                        col[(ci * taps + t) * len + r * wo + ox];
                                }
                            }
                        }
                    }
                }
                let mut dx = vec![0f32; c_in * h * w];
                col2im(&col, (h, w), &g, &mut dx, oys.clone());
                assert_eq!(
                    slice_bits(&dx),
                    slice_bits(&expected),
                    "k {k}, stride {s}, padding {p}, rows {oys:?}"
                );
            }
        }
    }

    /// Unfolding one output row at a time gives the result of unfolding the whole map (the
    /// per-image path: one image, large enough not to be stacked).
    #[test]
    fn bands_of_rows_do_not_change_the_result() {
        let g = ConvGeometry {
            c_in: 3,
            c_out: 5,
            kh: 7,
            kw: 7,
            stride: 2,
            padding: 3,
            groups: 1,
        };
        let (h, w) = (70, 66);
        let as_vec = |t: Tensor| t.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let x = as_vec(random(&[1, 3, h, w], 1));
        let weight = as_vec(random(&[5, 3, 7, 7], 2));
        let bias = as_vec(random(&[5], 3));
        let whole = forward(&x, (1, h, w), &weight, Some(&bias), &g, true, usize::MAX);
        let bands = forward(&x, (1, h, w), &weight, Some(&bias), &g, true, 1);
        let diff = whole
            .iter()
            .zip(&bands)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(diff < 1e-12, "forward in bands differs by {diff}");
        let (ho, wo) = g.out_hw(h, w).unwrap();
        let dy = as_vec(random(&[1, 5, ho, wo], 4));
        let whole = input_grad(&dy, (1, h, w), &weight, &g, usize::MAX);
        let bands = input_grad(&dy, (1, h, w), &weight, &g, 1);
        let diff = whole
            .iter()
            .zip(&bands)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(diff < 1e-12, "input gradient in bands differs by {diff}");
    }
}
