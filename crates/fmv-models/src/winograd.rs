//! Winograd's F(2×2, 3×3) for the 3×3 stride-1 ungrouped convolutions on the CPU (all of
//! VGG's, and the middle convolution of most ResNet blocks): 2.25× fewer multiplications than
//! the direct GEMM.
//!
//! Each 4×4 input tile `d` (stride 2) becomes `V = Bᵀ d B`, each 3×3 kernel `U = G g Gᵀ`
//! (precomputed once per layer); the 16 positions `ξ` of the 4×4 transform domain are 16
//! independent GEMMs `M[ξ] = U[ξ] (c_out × c_in) · V[ξ] (c_in × tiles)`, with the tiles of every
//! image of the batch side by side; the 2×2 output tile is `Aᵀ M A`. The transforms of F(2, 3)
//! hold only 0, ±1 and ±½, so the rounding is close to the direct algorithm's (measured in the
//! tests and in `docs/PERFORMANCE.md`).
//!
//! The input gradient of such a convolution is again one: `dx = conv(dy, w')` with
//! `w'[ci, co] = w[co, ci]` rotated by 180° and padding `2 − p`; it reuses the same code.

use rayon::prelude::*;

use crate::cpu_conv::{Float, matmul_strided, relu_of};

/// Positions of the transform domain.
const XI: usize = 16;

/// The transformed kernels of a `(c_out, c_in, 3, 3)` weight tensor as a `(16, c_out, c_in)`
/// tensor of the weight's dtype and device (computed in f64); with `transpose_flip`, those of
/// the input gradient's kernel `w'`, `(16, c_in, c_out)`.
pub(crate) fn kernels(
    weight: &candle_core::Tensor,
    transpose_flip: bool,
) -> candle_core::Result<candle_core::Tensor> {
    let (c_out, c_in, kh, kw) = weight.dims4()?;
    if (kh, kw) != (3, 3) {
        candle_core::bail!("Winograd F(2×2, 3×3) needs a 3×3 kernel, not {kh}×{kw}");
    }
    let w: Vec<f64> = weight
        .to_dtype(candle_core::DType::F64)?
        .flatten_all()?
        .to_vec1()?;
    let u = transform_weights(&w, c_out, c_in, transpose_flip);
    let shape = if transpose_flip {
        (XI, c_in, c_out)
    } else {
        (XI, c_out, c_in)
    };
    candle_core::Tensor::from_vec(u, shape, &candle_core::Device::Cpu)?
        .to_dtype(weight.dtype())?
        .to_device(weight.device())
}

/// The transformed kernels `U = G g Gᵀ` of a `(c_out, c_in, 3, 3)` weight, laid out
/// `[ξ][c_out][c_in]`; with `transpose_flip`, those of the input gradient's kernel `w'`.
fn transform_weights(weight: &[f64], c_out: usize, c_in: usize, transpose_flip: bool) -> Vec<f64> {
    const G: [[f64; 3]; 4] = [
        [1.0, 0.0, 0.0],
        [0.5, 0.5, 0.5],
        [0.5, -0.5, 0.5],
        [0.0, 0.0, 1.0],
    ];
    let (rows, cols) = if transpose_flip {
        (c_in, c_out)
    } else {
        (c_out, c_in)
    };
    let mut u = vec![0.0; XI * rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            let mut g = [[0.0; 3]; 3];
            for (ky, row) in g.iter_mut().enumerate() {
                for (kx, v) in row.iter_mut().enumerate() {
                    *v = if transpose_flip {
                        weight[((c * c_in + r) * 3 + 2 - ky) * 3 + 2 - kx]
                    } else {
                        weight[((r * c_in + c) * 3 + ky) * 3 + kx]
                    };
                }
            }
            for i in 0..4 {
                for j in 0..4 {
                    let mut acc = 0.0;
                    for (ky, grow) in g.iter().enumerate() {
                        for (kx, &gv) in grow.iter().enumerate() {
                            acc += G[i][ky] * gv * G[j][kx];
                        }
                    }
                    u[((i * 4 + j) * rows + r) * cols + c] = acc;
                }
            }
        }
    }
    u
}

/// Bytes of transform-domain scratch (`V` and `M`) a convolution works in at most: the tiles
/// are taken in chunks of rows so that the scratch stays below glibc's largest mmap threshold
/// (32 MiB) and is reused, not mapped and page-faulted, on every call.
const SCRATCH_BYTES: usize = 24 << 20;

/// `y = conv3×3(x, ·) + b` (then ReLU when `relu`) for a contiguous NCHW batch, stride 1,
/// padding `p`, from the transformed kernels `u` (`[ξ][c_out][c_in]`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv3x3<T: Float>(
    x: &[T],
    (n, c_in, h, w): (usize, usize, usize, usize),
    u: &[T],
    c_out: usize,
    bias: Option<&[T]>,
    p: usize,
    relu: bool,
) -> Vec<T> {
    let dims = (n, c_in, h, w);
    conv3x3_in_chunks(x, dims, u, c_out, bias, p, relu, SCRATCH_BYTES)
}

/// [`conv3x3`] with at most `scratch_bytes` of transform-domain scratch (one tile row at least).
#[allow(clippy::too_many_arguments)]
fn conv3x3_in_chunks<T: Float>(
    x: &[T],
    (n, c_in, h, w): (usize, usize, usize, usize),
    u: &[T],
    c_out: usize,
    bias: Option<&[T]>,
    p: usize,
    relu: bool,
    scratch_bytes: usize,
) -> Vec<T> {
    let (ho, wo) = (h + 2 * p - 2, w + 2 * p - 2);
    let (th, tw) = (ho.div_ceil(2), wo.div_ceil(2));
    // Tile rows of the whole batch, `b·th + ty`, taken `chunk` at a time (at least one).
    let per_row = XI * (c_in + c_out) * tw * std::mem::size_of::<T>();
    let chunk = (scratch_bytes / per_row).clamp(1, n * th);
    let mut v = vec![T::zero(); c_in * XI * chunk * tw];
    let mut m = vec![T::zero(); c_out * XI * chunk * tw];
    let mut y = vec![T::zero(); n * c_out * ho * wo];
    // Each output channel's planes, one per image, for the thread that owns the channel.
    let mut by_channel: Vec<Vec<&mut [T]>> = (0..c_out).map(|_| Vec::new()).collect();
    for (i, plane) in y.chunks_mut(ho * wo).enumerate() {
        by_channel[i % c_out].push(plane);
    }
    for r0 in (0..n * th).step_by(chunk) {
        let rows = r0..(r0 + chunk).min(n * th);
        let tiles = rows.len() * tw;
        let v = &mut v[..c_in * XI * tiles];
        let m = &mut m[..c_out * XI * tiles];
        input_transform(x, (c_in, h, w, th, tw), p, rows.clone(), v);
        // M[ξ] = U[ξ] · V[ξ], written [c_out][ξ][tile].
        for xi in 0..XI {
            matmul_strided(
                &mut m[xi * tiles..],
                XI * tiles,
                (c_out, tiles, c_in),
                &u[xi * c_out * c_in..][..c_out * c_in],
                (c_in, 1),
                &v[xi * tiles..],
                (XI * tiles, 1),
            );
        }
        by_channel
            .par_iter_mut()
            .enumerate()
            .for_each(|(co, planes)| {
                let mc = &m[co * XI * tiles..][..XI * tiles];
                let b0 = bias.map_or(T::zero(), |b| b[co]);
                output_transform(mc, (ho, wo, th, tw), rows.clone(), b0, relu, planes);
            });
    }
    y
}

/// `V = Bᵀ d B` of the tiles in tile rows `rows` (of the whole batch), laid out
/// `[c_in][ξ][tile]` so that each channel is one thread's contiguous block.
fn input_transform<T: Float>(
    x: &[T],
    (c_in, h, w, th, tw): (usize, usize, usize, usize, usize),
    p: usize,
    rows: std::ops::Range<usize>,
    v: &mut [T],
) {
    let tiles = rows.len() * tw;
    v.par_chunks_mut(XI * tiles)
        .enumerate()
        .for_each(|(ci, vc)| {
            // Four padded input rows split into even and odd columns (so that every later
            // loop reads contiguously), then their vertical combinations Bᵀ·d.
            let half = tw + 1;
            let mut r = vec![T::zero(); 8 * half];
            let mut t = vec![T::zero(); 8 * half];
            for (k, row) in rows.clone().enumerate() {
                let (b, ty) = (row / th, row % th);
                let plane = &x[(b * c_in + ci) * h * w..][..h * w];
                for (i, split) in r.chunks_mut(2 * half).enumerate() {
                    split.fill(T::zero());
                    let iy = (2 * ty + i) as isize - p as isize;
                    if iy >= 0 && iy < h as isize {
                        let (even, odd) = split.split_at_mut(half);
                        for (ix, &val) in plane[iy as usize * w..][..w].iter().enumerate() {
                            let j = ix + p;
                            if j.is_multiple_of(2) {
                                even[j / 2] = val;
                            } else {
                                odd[j / 2] = val;
                            }
                        }
                    }
                }
                let q = 2 * half;
                for j in 0..q {
                    let (r0, r1, r2, r3) = (r[j], r[q + j], r[2 * q + j], r[3 * q + j]);
                    t[j] = r0 - r2;
                    t[q + j] = r1 + r2;
                    t[2 * q + j] = r2 - r1;
                    t[3 * q + j] = r1 - r3;
                }
                for (i, ti) in t.chunks(q).enumerate() {
                    let (even, odd) = ti.split_at(half);
                    let [v0, v1, v2, v3] = four_rows(vc, 4 * i, tiles, k * tw, tw);
                    for tx in 0..tw {
                        let (a, b, c, d) = (even[tx], odd[tx], even[tx + 1], odd[tx + 1]);
                        v0[tx] = a - c;
                        v1[tx] = b + c;
                        v2[tx] = c - b;
                        v3[tx] = b - d;
                    }
                }
            }
        });
}

/// `Y = Aᵀ M A` (+ bias, ReLU) of one output channel for the tile rows `rows`, written into
/// that channel's plane of each image.
fn output_transform<T: Float>(
    mc: &[T],
    (ho, wo, th, tw): (usize, usize, usize, usize),
    rows: std::ops::Range<usize>,
    bias: T,
    relu: bool,
    planes: &mut [&mut [T]],
) {
    let tiles = rows.len() * tw;
    // The two rows of Aᵀ·M for each of the four columns, over a row of tiles.
    let mut s = vec![T::zero(); 8 * tw];
    let mut out = vec![T::zero(); 2 * tw];
    for (k, row) in rows.enumerate() {
        let (image, ty) = (row / th, row % th);
        for j in 0..4 {
            let col = |i: usize| &mc[(4 * i + j) * tiles + k * tw..][..tw];
            let (m0, m1, m2, m3) = (col(0), col(1), col(2), col(3));
            for tx in 0..tw {
                s[2 * j * tw + tx] = m0[tx] + m1[tx] + m2[tx];
                s[(2 * j + 1) * tw + tx] = m1[tx] - m2[tx] - m3[tx];
            }
        }
        for i in 0..2 {
            let oy = 2 * ty + i;
            if oy >= ho {
                continue;
            }
            let sj = |j: usize| &s[(2 * j + i) * tw..][..tw];
            let (a, b, c, d) = (sj(0), sj(1), sj(2), sj(3));
            for tx in 0..tw {
                out[2 * tx] = a[tx] + b[tx] + c[tx] + bias;
                out[2 * tx + 1] = b[tx] - c[tx] - d[tx] + bias;
            }
            if relu {
                for val in out.iter_mut() {
                    *val = relu_of(*val);
                }
            }
            planes[image][oy * wo..][..wo].copy_from_slice(&out[..wo]);
        }
    }
}

/// Rows `first .. first + 4` of a `[ξ][tile]` block, each cut to the `len` tiles from `start`.
fn four_rows<T>(
    block: &mut [T],
    first: usize,
    tiles: usize,
    start: usize,
    len: usize,
) -> [&mut [T]; 4] {
    let rows = &mut block[first * tiles..(first + 4) * tiles];
    let (r0, rest) = rows.split_at_mut(tiles);
    let (r1, rest) = rest.split_at_mut(tiles);
    let (r2, r3) = rest.split_at_mut(tiles);
    [r0, r1, r2, r3].map(|r| &mut r[start..start + len])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chunks of one tile row give the result of one chunk for the whole batch (f64, so that
    /// only a GEMM's order of sums could differ).
    #[test]
    fn chunking_does_not_change_the_result() {
        let (n, c_in, c_out, h, w) = (3, 5, 4, 9, 7);
        let mut seed = 1u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        let x: Vec<f64> = (0..n * c_in * h * w).map(|_| next()).collect();
        let weight: Vec<f64> = (0..c_out * c_in * 9).map(|_| next()).collect();
        let bias: Vec<f64> = (0..c_out).map(|_| next()).collect();
        let u = transform_weights(&weight, c_out, c_in, false);
        let dims = (n, c_in, h, w);
        let whole = conv3x3_in_chunks(&x, dims, &u, c_out, Some(&bias), 1, true, usize::MAX);
        let rows = conv3x3_in_chunks(&x, dims, &u, c_out, Some(&bias), 1, true, 1);
        let max = whole
            .iter()
            .zip(&rows)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(max < 1e-12, "chunked result differs by {max}");
        assert!(whole.iter().any(|&v| v > 0.0));
    }
}
