//! Winograd's minimal filtering, F(m×m, 3×3), for the 3×3 stride-1 ungrouped convolutions on
//! the CPU (all of VGG's, and the middle convolution of most ResNet blocks).
//!
//! Each `a×a` input tile `d` (`a = m + 2`, tiles `m` apart) becomes `V = Bᵀ d B`, each 3×3
//! kernel `U = G g Gᵀ` (precomputed once per layer); the `a²` positions `ξ` of the transform
//! domain are `a²` independent GEMMs `M[ξ] = U[ξ] (c_out × c_in) · V[ξ] (c_in × tiles)`, with the
//! tiles of every image of the batch side by side; the `m×m` output tile is `Aᵀ M A`.
//!
//! - [`Tile::F2`], F(2×2, 3×3): 2.25× fewer multiplications than the direct GEMM; transforms
//!   of 0, ±1 and ±½ only, so it rounds like the direct algorithm.
//! - [`Tile::F4`], F(4×4, 3×3): 4× fewer; its transforms hold coefficients up to 8 and 1/24, so
//!   f32 rounding grows.
//!
//! The input gradient of such a convolution is again one: `dx = conv(dy, w')` with
//! `w'[ci, co] = w[co, ci]` rotated by 180° and padding `2 − p`; it reuses the same code and,
//! for F(2×2, 3×3), the layer's own kernels (`Kernels::adjoint`).
//!
//! The transforms run one tile at a time for any [`Float`], and on x86-64 4, 8 or 16 `f32`
//! tiles at a time in SSE, AVX or AVX-512 registers ([`simd`]) where that measured faster; all
//! give the same values bit for bit.

use rayon::prelude::*;

use crate::algorithm::Tile;
use crate::buffer::{SharedOut, with_scratch, zeroed};
use crate::elementwise::{Elementwise, ReluGrad};
use crate::float::{Float, relu_of};
use crate::matmul::matmul_into;

#[cfg(target_arch = "x86_64")]
mod simd;

/// Without x86-64's vector registers, every tile row takes the scalar path.
#[cfg(not(target_arch = "x86_64"))]
mod simd {
    use super::{Float, Scheme};

    pub(super) fn input_row<T: Float, S: Scheme>(
        _: &[T],
        _: usize,
        _: usize,
        _: usize,
        _: &mut [T],
    ) -> bool {
        false
    }

    pub(super) fn deinterleave<T: Float, const M: usize>(_: &[T], _: &mut [&mut [T]; M]) -> bool {
        false
    }

    pub(super) fn output_row<T: Float, S: Scheme>(
        _: &[T],
        _: usize,
        _: usize,
        _: T,
        _: bool,
        _: &mut [T],
    ) -> bool {
        false
    }
}

/// One F(m×m, 3×3) transform: its sizes and matrices as compile-time constants, so that the
/// transform loops unroll and multiplications by 0 and ±1 fold away. Matrices are stored 6 wide
/// (the largest `a`); entries past `a` are unused.
trait Scheme {
    /// Output tile side.
    const M: usize;
    /// Input tile side, `M + 2`.
    const A: usize;
    /// `Bᵀ`, `A × A`.
    const BT: [[f64; 6]; 6];
    /// `G`, `A × 3`.
    const G: [[f64; 3]; 6];
    /// `Aᵀ`, `M × A`.
    const AT: [[f64; 6]; 4];
    /// A row permutation `π` with `G·J = Π·G` (`J` reverses the kernel's three taps), when one
    /// exists: then the kernels of a rotated kernel are the original's with `ξ = (i, j)` read at
    /// `(π(i), π(j))`, and the input gradient needs no kernels of its own.
    const FLIP: Option<[usize; 6]>;

    /// [`into_phases`] with this scheme's `M` phases.
    fn into_phases<T: Float>(input: Option<&[T]>, p: usize, dr: &mut [T]);
}

/// F(2×2, 3×3).
struct F2x3;

impl Scheme for F2x3 {
    const M: usize = 2;
    const A: usize = 4;
    #[rustfmt::skip]
    const BT: [[f64; 6]; 6] = [
        [1.0, 0.0, -1.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 1.0, 0.0, 0.0, 0.0],
        [0.0, -1.0, 1.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, -1.0, 0.0, 0.0],
        [0.0; 6],
        [0.0; 6],
    ];
    #[rustfmt::skip]
    const G: [[f64; 3]; 6] = [
        [1.0, 0.0, 0.0],
        [0.5, 0.5, 0.5],
        [0.5, -0.5, 0.5],
        [0.0, 0.0, 1.0],
        [0.0; 3],
        [0.0; 3],
    ];
    #[rustfmt::skip]
    const AT: [[f64; 6]; 4] = [
        [1.0, 1.0, 1.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, -1.0, -1.0, 0.0, 0.0],
        [0.0; 6],
        [0.0; 6],
    ];
    /// Rows 1 and 2 of `G` are symmetric; rows 0 and 3 are each other reversed.
    const FLIP: Option<[usize; 6]> = Some([3, 1, 2, 0, 4, 5]);

    fn into_phases<T: Float>(input: Option<&[T]>, p: usize, dr: &mut [T]) {
        into_phases::<T, 2>(input, p, dr)
    }
}

/// F(4×4, 3×3), Lavin & Gray's interpolation points 0, ±1, ±2, ∞.
struct F4x3;

impl Scheme for F4x3 {
    const M: usize = 4;
    const A: usize = 6;
    #[rustfmt::skip]
    const BT: [[f64; 6]; 6] = [
        [4.0, 0.0, -5.0, 0.0, 1.0, 0.0],
        [0.0, -4.0, -4.0, 1.0, 1.0, 0.0],
        [0.0, 4.0, -4.0, -1.0, 1.0, 0.0],
        [0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
        [0.0, 2.0, -1.0, -2.0, 1.0, 0.0],
        [0.0, 4.0, 0.0, -5.0, 0.0, 1.0],
    ];
    #[rustfmt::skip]
    const G: [[f64; 3]; 6] = [
        [1.0 / 4.0, 0.0, 0.0],
        [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
        [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
        [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
        [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
        [0.0, 0.0, 1.0],
    ];
    #[rustfmt::skip]
    const AT: [[f64; 6]; 4] = [
        [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
        [0.0, 1.0, -1.0, 2.0, -2.0, 0.0],
        [0.0, 1.0, 1.0, 4.0, 4.0, 0.0],
        [0.0, 1.0, -1.0, 8.0, -8.0, 1.0],
    ];
    /// Row 0 of `G` reversed, `(0, 0, ¼)`, is no row of `G`.
    const FLIP: Option<[usize; 6]> = None;

    fn into_phases<T: Float>(input: Option<&[T]>, p: usize, dr: &mut [T]) {
        into_phases::<T, 4>(input, p, dr)
    }
}

impl Tile {
    /// Output tile side `m`.
    fn m(self) -> usize {
        match self {
            Tile::F2 => F2x3::M,
            Tile::F4 => F4x3::M,
        }
    }

    /// Input tile side `a = m + 2`.
    fn a(self) -> usize {
        self.m() + 2
    }

    /// `G`, `a × 3`.
    fn g(self) -> &'static [[f64; 3]] {
        match self {
            Tile::F2 => &F2x3::G[..F2x3::A],
            Tile::F4 => &F4x3::G[..F4x3::A],
        }
    }
}

/// `[f(0), …, f(n − 1)]`, then zeros: the first `n` values of a tile's row or column.
#[inline(always)]
fn first<T: Float>(n: usize, f: impl Fn(usize) -> T) -> [T; 6] {
    std::array::from_fn(|i| if i < n { f(i) } else { T::zero() })
}

/// `Σ_r c[r] · x[r]` over the first `n` entries, skipping zero coefficients (with `c` constant
/// and the loop unrolled, the skips and the multiplications by ±1 fold away).
#[inline(always)]
fn dot<T: Float>(c: &[f64; 6], x: &[T; 6], n: usize) -> T {
    let mut acc = T::zero();
    for r in 0..n {
        if c[r] == 1.0 {
            acc += x[r];
        } else if c[r] == -1.0 {
            acc -= x[r];
        } else if c[r] != 0.0 {
            acc += T::from_f64(c[r]) * x[r];
        }
    }
    acc
}

/// The transformed kernels of a `(c_out, c_in, 3, 3)` weight tensor as an `(a², c_out, c_in)`
/// tensor of the weight's dtype and device (computed in f64); F(2×2, 3×3)'s input gradient reads
/// these too ([`Kernels::adjoint`]). With `adjoint`, those of the input gradient's convolution
/// (the rotated, transposed weight `w'`), `(a², c_in, c_out)`: what F(4×4, 3×3) needs to compute
/// an input gradient, since it has no [`Scheme::FLIP`].
pub(crate) fn kernels(
    weight: &candle_core::Tensor,
    tile: Tile,
    adjoint: bool,
) -> candle_core::Result<candle_core::Tensor> {
    let (c_out, c_in, kh, kw) = weight.dims4()?;
    if (kh, kw) != (3, 3) {
        candle_core::bail!("Winograd F(m×m, 3×3) needs a 3×3 kernel, not {kh}×{kw}");
    }
    let w: Vec<f64> = weight
        .to_dtype(candle_core::DType::F64)?
        .flatten_all()?
        .to_vec1()?;
    let u = transform_weights(&w, c_out, c_in, tile, adjoint);
    let xi = tile.a() * tile.a();
    let shape = if adjoint {
        (xi, c_in, c_out)
    } else {
        (xi, c_out, c_in)
    };
    candle_core::Tensor::from_vec(u, shape, &candle_core::Device::Cpu)?
        .to_dtype(weight.dtype())?
        .to_device(weight.device())
}

/// The transformed kernels `U = G g Gᵀ` of a `(c_out, c_in, 3, 3)` weight, laid out
/// `[ξ][c_out][c_in]`; with `transpose_flip`, those of the input gradient's kernel `w'`
/// (`[ξ][c_in][c_out]`), made directly: the test of [`Scheme::FLIP`] compares them with what the
/// input gradient reads.
fn transform_weights(
    weight: &[f64],
    c_out: usize,
    c_in: usize,
    tile: Tile,
    transpose_flip: bool,
) -> Vec<f64> {
    let (a, g_mat) = (tile.a(), tile.g());
    let (rows, cols) = if transpose_flip {
        (c_in, c_out)
    } else {
        (c_out, c_in)
    };
    let mut u = vec![0.0; a * a * rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            let k = |ky: usize, kx: usize| {
                if transpose_flip {
                    weight[((c * c_in + r) * 3 + 2 - ky) * 3 + 2 - kx]
                } else {
                    weight[((r * c_in + c) * 3 + ky) * 3 + kx]
                }
            };
            for i in 0..a {
                for j in 0..a {
                    let mut acc = 0.0;
                    for ky in 0..3 {
                        for kx in 0..3 {
                            acc += g_mat[i][ky] * k(ky, kx) * g_mat[j][kx];
                        }
                    }
                    u[((i * a + j) * rows + r) * cols + c] = acc;
                }
            }
        }
    }
    u
}

/// How a convolution takes its tiles: in chunks of whole tile rows (of every image of the
/// batch) whose transform-domain scratch (`V` and `M`) stays within `max_bytes`, but of at least
/// `min_tiles` tiles, and of one row at least.
#[derive(Debug, Clone, Copy)]
struct Chunks {
    max_bytes: usize,
    min_tiles: usize,
}

impl Chunks {
    /// The chunks `tile` takes by default. F(2×2, 3×3): up to 24 MiB, below glibc's largest
    /// mmap threshold (32 MiB), so that the scratch is reused, not mapped and page-faulted, on
    /// every call; smaller chunks made its 56 px layers slower. F(4×4, 3×3): about one core's
    /// L2 (1 MiB), so that `V` is still in cache when the products read it and `M` when the
    /// output transform does, but at least 128 tiles, so that each product stays wide: VGG16's
    /// large layers gain, the rest do not move (docs/PERFORMANCE.md, "Winograd's scratch sized
    /// for the cache, F(4×4) only"). The chunks decide which tiles a product takes together,
    /// never a tile's arithmetic: every chunking gives the same values.
    fn of(tile: Tile) -> Self {
        match tile {
            Tile::F2 => Chunks {
                max_bytes: 24 << 20,
                min_tiles: 1,
            },
            Tile::F4 => Chunks {
                max_bytes: 1 << 20,
                min_tiles: 128,
            },
        }
    }

    /// Tile rows per chunk, for `per_row` bytes of scratch and `tw` tiles a row, out of `rows`.
    fn rows(self, per_row: usize, tw: usize, rows: usize) -> usize {
        (self.max_bytes / per_row)
            .max(self.min_tiles.div_ceil(tw))
            .clamp(1, rows)
    }
}

/// The shape of one call: input and output sizes, tiles, padding.
#[derive(Debug, Clone, Copy)]
struct Plan {
    c_in: usize,
    h: usize,
    w: usize,
    ho: usize,
    wo: usize,
    /// Tile rows and columns per image.
    th: usize,
    tw: usize,
    p: usize,
    /// Whether the transforms may take the vector paths ([`simd`]); the tests turn it off to
    /// compare.
    simd: bool,
}

/// Transformed kernels as a convolution reads them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Kernels<'a, T> {
    /// `[ξ][c_out][c_in]` of the layer they were made for (by [`kernels`], not flipped).
    pub u: &'a [T],
    /// Compute the layer's transposed, rotated convolution (its input gradient) from the layer's
    /// own kernels: `ξ = (i, j)` reads the layer's `(π(i), π(j))`, transposed ([`Scheme::FLIP`];
    /// F(2×2, 3×3) only). The call's input channels are then the layer's outputs.
    pub adjoint: bool,
}

/// `y = conv3×3(x, ·) + b` (then ReLU when `relu`) for a contiguous NCHW batch, stride 1,
/// padding `p`, from the transformed kernels of `tile`. With a `relu_mask` (as long as `x`),
/// the input is first zeroed where the mask is not positive, as it is read: an input gradient
/// through the ReLU whose output is the mask, with no masked copy of the whole gradient.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv3x3<T: Float>(
    x: &[T],
    relu_mask: Option<&[T]>,
    dims: (usize, usize, usize, usize),
    tile: Tile,
    u: Kernels<'_, T>,
    c_out: usize,
    bias: Option<&[T]>,
    p: usize,
    relu: bool,
) -> Vec<T> {
    let input = Input { x, relu_mask };
    conv3x3_in(input, dims, tile, u, c_out, bias, p, relu, Chunks::of(tile))
}

/// A convolution's input: its values, and the output of the ReLU it came through, if any
/// ([`conv3x3`]'s `relu_mask`).
#[derive(Debug, Clone, Copy)]
struct Input<'a, T> {
    x: &'a [T],
    relu_mask: Option<&'a [T]>,
}

impl<'a, T: Float> Input<'a, T> {
    /// Values read as they are.
    #[cfg(test)]
    fn unmasked(x: &'a [T]) -> Self {
        Input { x, relu_mask: None }
    }

    /// Row `iy` of channel `ci` of image `b`'s `h × w` plane, masked into `masked` when there
    /// is a mask.
    fn row<'b>(self, (b, ci, iy): (usize, usize, usize), pl: &Plan, masked: &'b mut [T]) -> &'b [T]
    where
        'a: 'b,
    {
        let at = ((b * pl.c_in + ci) * pl.h + iy) * pl.w;
        let row = &self.x[at..][..pl.w];
        let Some(mask) = self.relu_mask else {
            return row;
        };
        for ((m, &dy), &y) in masked.iter_mut().zip(row).zip(&mask[at..][..pl.w]) {
            *m = ReluGrad::apply(dy, y);
        }
        masked
    }
}

/// [`conv3x3`] in the given chunks.
#[allow(clippy::too_many_arguments)]
fn conv3x3_in<T: Float>(
    x: Input<'_, T>,
    dims: (usize, usize, usize, usize),
    tile: Tile,
    u: Kernels<'_, T>,
    c_out: usize,
    bias: Option<&[T]>,
    p: usize,
    relu: bool,
    chunks: Chunks,
) -> Vec<T> {
    match tile {
        Tile::F2 => conv3x3_in_chunks::<T, F2x3>(x, dims, u, c_out, bias, p, relu, chunks),
        Tile::F4 => conv3x3_in_chunks::<T, F4x3>(x, dims, u, c_out, bias, p, relu, chunks),
    }
}

/// [`conv3x3`] for one scheme, in the given chunks.
#[allow(clippy::too_many_arguments)]
fn conv3x3_in_chunks<T: Float, S: Scheme>(
    x: Input<'_, T>,
    (n, c_in, h, w): (usize, usize, usize, usize),
    u: Kernels<'_, T>,
    c_out: usize,
    bias: Option<&[T]>,
    p: usize,
    relu: bool,
    chunks: Chunks,
) -> Vec<T> {
    let xi = S::A * S::A;
    let (ho, wo) = (h + 2 * p - 2, w + 2 * p - 2);
    let (th, tw) = (ho.div_ceil(S::M), wo.div_ceil(S::M));
    let plan = Plan {
        c_in,
        h,
        w,
        ho,
        wo,
        th,
        tw,
        p,
        simd: true,
    };
    // Tile rows of the whole batch, `b·th + ty`, taken `chunk` at a time (at least one).
    let per_row = xi * (c_in + c_out) * tw * std::mem::size_of::<T>();
    let chunk = chunks.rows(per_row, tw, n * th);
    let mut y = zeroed(n * c_out * ho * wo);
    // Each output channel's planes, one per image, for the thread that owns the channel.
    let mut by_channel: Vec<Vec<&mut [T]>> = (0..c_out).map(|_| Vec::new()).collect();
    for (i, plane) in y.chunks_mut(ho * wo).enumerate() {
        by_channel[i % c_out].push(plane);
    }
    // `V` and `M` in the thread's reused scratch: the input transform writes every element of
    // `V` and the products every element of `M` before anything reads them.
    let v_len = c_in * xi * chunk * tw;
    with_scratch(v_len + c_out * xi * chunk * tw, |scratch: &mut [T]| {
        let (v, mm) = scratch.split_at_mut(v_len);
        for r0 in (0..n * th).step_by(chunk) {
            let rows = r0..(r0 + chunk).min(n * th);
            let tiles = rows.len() * tw;
            let v = &mut v[..c_in * xi * tiles];
            let mm = &mut mm[..c_out * xi * tiles];
            v.par_chunks_mut(xi * tiles)
                .enumerate()
                .for_each(|(ci, vc)| input_transform::<T, S>(x, &plan, ci, rows.clone(), vc));
            // M[ξ] = U[ξ] · V[ξ], written [c_out][ξ][tile]: `xi` independent products, each on
            // one thread. They are small (3–4 M multiply-adds in every ResNet50 layer at 224 px),
            // so splitting each across the threads costs more in waking and joining them than it
            // gains.
            let out = SharedOut(mm.as_mut_ptr());
            (0..xi).into_par_iter().for_each(|k| {
                let (block, strides) = match (u.adjoint, S::FLIP) {
                    (false, _) => (k, (c_in, 1)),
                    (true, Some(flip)) => (flip[k / S::A] * S::A + flip[k % S::A], (1, c_out)),
                    (true, None) => unreachable!("only F(2×2, 3×3) computes input gradients"),
                };
                // SAFETY: product k writes the elements `co·xi·tiles + k·tiles + t` (co < c_out,
                // t < tiles) of `mm`, which holds c_out·xi·tiles of them: inside it, and disjoint
                // from every other product's; `mm` is not otherwise touched until all have ended.
                unsafe {
                    matmul_into(
                        out.at(k * tiles),
                        xi * tiles,
                        false,
                        (c_out, tiles, c_in),
                        &u.u[block * c_out * c_in..][..c_out * c_in],
                        strides,
                        &v[k * tiles..],
                        (xi * tiles, 1),
                        gemm::Parallelism::None,
                    )
                }
            });
            by_channel
                .par_iter_mut()
                .enumerate()
                .for_each(|(co, planes)| {
                    let mc = &mm[co * xi * tiles..][..xi * tiles];
                    let b0 = bias.map_or(T::zero(), |b| b[co]);
                    output_transform::<T, S>(mc, &plan, rows.clone(), b0, relu, planes);
                });
        }
    });
    y
}

/// `V = Bᵀ d B` of channel `ci`'s tiles in the tile rows `rows` (of the whole batch), written
/// into `vc`, laid out `[ξ][tile]`.
fn input_transform<T: Float, S: Scheme>(
    x: Input<'_, T>,
    pl: &Plan,
    ci: usize,
    rows: std::ops::Range<usize>,
    vc: &mut [T],
) {
    let (m, a) = (S::M, S::A);
    let (h, w, tw, p) = (pl.h, pl.w, pl.tw, pl.p);
    let tiles = rows.len() * tw;
    // Column j of a padded input row lies in phase j % m at j / m, so that tile tx's column c
    // is phase c % m at tx + c / m: every loop below runs over contiguous memory.
    let len = tw + 1;
    let width = m * len;
    let mut d = vec![T::zero(); a * width];
    let mut t = Vec::new();
    let mut masked = vec![T::zero(); if x.relu_mask.is_some() { w } else { 0 }];
    for (k, row) in rows.enumerate() {
        let (b, ty) = (row / pl.th, row % pl.th);
        for (r, dr) in d.chunks_exact_mut(width).enumerate() {
            let iy = (m * ty + r) as isize - p as isize;
            let input =
                (iy >= 0 && iy < h as isize).then(|| x.row((b, ci, iy as usize), pl, &mut masked));
            S::into_phases(input, p, dr);
        }
        let row_out = &mut vc[k * tw..];
        if !(pl.simd && simd::input_row::<T, S>(&d, len, tw, tiles, row_out)) {
            t.resize(a * width, T::zero());
            input_row::<T, S>(&d, &mut t, len, tw, tiles, row_out);
        }
    }
}

/// One input row `input` (`None`: a row of the padding), padded by `p` zeros on each side,
/// written into `dr` as `M` phases of `dr.len() / M` values: padded column `j` goes to phase
/// `j % M` at `j / M`, and every other value of `dr` is zero. Where all `M` columns of a
/// position are input columns (the whole row but its ends), each run of `M` inputs is
/// transposed into the phases at once; the ends go value by value.
fn into_phases<T: Float, const M: usize>(input: Option<&[T]>, p: usize, dr: &mut [T]) {
    let Some(input) = input else {
        dr.fill(T::zero());
        return;
    };
    let len = dr.len() / M;
    let w = input.len();
    // Positions q in `inner` hold the padded columns q·M .. q·M + M, all inside the input.
    let inner_start = p.div_ceil(M).min(len);
    let inner = inner_start..((w + p) / M).clamp(inner_start, len);
    let value = |j: usize| j.checked_sub(p).and_then(|ix| input.get(ix)).copied();
    let mut phases = dr.chunks_exact_mut(len);
    let mut phases: [&mut [T]; M] = std::array::from_fn(|_| phases.next().unwrap_or_default());
    for (ph, out) in phases.iter_mut().enumerate() {
        for q in (0..inner.start).chain(inner.end..len) {
            out[q] = value(q * M + ph).unwrap_or(T::zero());
        }
    }
    if inner.is_empty() {
        return;
    }
    let runs = &input[inner.start * M - p..inner.end * M - p];
    let mut inner_phases = phases.map(|out| &mut out[inner.clone()]);
    if simd::deinterleave(runs, &mut inner_phases) {
        return;
    }
    for (q, run) in runs.chunks_exact(M).enumerate() {
        for (out, &v) in inner_phases.iter_mut().zip(run) {
            out[q] = v;
        }
    }
}

/// The tiles of one tile row, one at a time: `V[ξ][tx]` into `row_out[ξ·tiles + tx]`, from the
/// row's `a` input rows in phases in `d` (`len` values a phase), through `t` (as large as `d`).
fn input_row<T: Float, S: Scheme>(
    d: &[T],
    t: &mut [T],
    len: usize,
    tw: usize,
    tiles: usize,
    row_out: &mut [T],
) {
    let (m, a) = (S::M, S::A);
    let width = m * len;
    // Vertical: t[i] = Σ_r Bᵀ[i, r] · d[r], one pass over the columns.
    for col in 0..width {
        let dc = first(a, |r| d[r * width + col]);
        for i in 0..a {
            t[i * width + col] = dot(&S::BT[i], &dc, a);
        }
    }
    // Horizontal: V[i·a + j][tx] = Σ_c Bᵀ[j, c] · t[i][tx·m + c].
    for i in 0..a {
        let ti = &t[i * width..][..width];
        for tx in 0..tw {
            let e = first(a, |c| ti[(c % m) * len + tx + c / m]);
            for j in 0..a {
                row_out[(i * a + j) * tiles + tx] = dot(&S::BT[j], &e, a);
            }
        }
    }
}

/// `Y = Aᵀ M A` (+ bias, ReLU) of one output channel for the tile rows `rows`, written into
/// that channel's plane of each image.
fn output_transform<T: Float, S: Scheme>(
    mc: &[T],
    pl: &Plan,
    rows: std::ops::Range<usize>,
    bias: T,
    relu: bool,
    planes: &mut [&mut [T]],
) {
    let (m, a) = (S::M, S::A);
    let (tw, wo) = (pl.tw, pl.wo);
    let tiles = rows.len() * tw;
    // The tile row's `m` output rows, `m·tw` values each (the last tile may reach past `wo`).
    let stride = m * tw;
    // Where the tiles cover the output exactly, a tile row's lines are the plane's `m` rows
    // themselves, written in place; elsewhere they are written here and then copied.
    let in_place = stride == wo && m * pl.th == pl.ho;
    let mut lines = vec![T::zero(); if in_place { 0 } else { m * stride }];
    let mut s = Vec::new();
    for (k, row) in rows.enumerate() {
        let (image, ty) = (row / pl.th, row % pl.th);
        let row_in = &mc[k * tw..];
        let mut transform = |lines: &mut [T]| {
            if !(pl.simd && simd::output_row::<T, S>(row_in, tw, tiles, bias, relu, lines)) {
                s.resize(m * a * tw, T::zero());
                output_row::<T, S>(row_in, tw, tiles, bias, relu, &mut s, lines);
            }
        };
        if in_place {
            transform(&mut planes[image][m * ty * wo..][..m * wo]);
            continue;
        }
        transform(&mut lines);
        for (ii, line) in lines.chunks_exact(stride).enumerate() {
            let oy = m * ty + ii;
            if oy >= pl.ho {
                break;
            }
            planes[image][oy * wo..][..wo].copy_from_slice(&line[..wo]);
        }
    }
}

/// The tiles of one tile row, one at a time: output row `i'` of the row's tiles into
/// `lines[i'·m·tw..]`, from `M[ξ][tx]` at `row_in[ξ·tiles + tx]`, through `s` (`m·a·tw`).
fn output_row<T: Float, S: Scheme>(
    row_in: &[T],
    tw: usize,
    tiles: usize,
    bias: T,
    relu: bool,
    s: &mut [T],
    lines: &mut [T],
) {
    let (m, a) = (S::M, S::A);
    // s[i'][j][tx] = Σ_i Aᵀ[i', i] · M[i·a + j][tx]; then row i' of the output tile is
    // Σ_j Aᵀ[j', j] · s[i'][j], at columns tx·m + j'.
    for j in 0..a {
        for tx in 0..tw {
            let col = first(a, |i| row_in[(i * a + j) * tiles + tx]);
            for ii in 0..m {
                s[(ii * a + j) * tw + tx] = dot(&S::AT[ii], &col, a);
            }
        }
    }
    for (ii, line) in lines.chunks_exact_mut(m * tw).enumerate() {
        for tx in 0..tw {
            let e = first(a, |j| s[(ii * a + j) * tw + tx]);
            for jj in 0..m {
                let val = dot(&S::AT[jj], &e, a) + bias;
                line[tx * m + jj] = if relu { relu_of(val) } else { val };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_data::slice_bits;

    fn random(n: usize, seed: &mut u64) -> Vec<f64> {
        (0..n)
            .map(|_| {
                *seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (*seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5
            })
            .collect()
    }

    /// F(2×2, 3×3)'s flip: the kernels of the rotated, transposed weight (made directly) equal
    /// the weight's own read at `(π(i), π(j))` and transposed, which is what the input gradient
    /// reads.
    #[test]
    fn flipped_kernels_are_the_permuted_transposed_kernels() {
        let (c_out, c_in) = (3, 4);
        let mut seed = 7u64;
        let weight = random(c_out * c_in * 9, &mut seed);
        let forward = transform_weights(&weight, c_out, c_in, Tile::F2, false);
        let flipped = transform_weights(&weight, c_out, c_in, Tile::F2, true);
        let flip = F2x3::FLIP.expect("F2 has a flip");
        for k in 0..16 {
            let kk = flip[k / 4] * 4 + flip[k % 4];
            for ci in 0..c_in {
                for co in 0..c_out {
                    let direct = flipped[(k * c_in + ci) * c_out + co];
                    let read = forward[(kk * c_out + co) * c_in + ci];
                    assert!((direct - read).abs() < 1e-15, "ξ {k}, ci {ci}, co {co}");
                }
            }
        }
        assert!(F4x3::FLIP.is_none());
    }

    /// Chunks of one tile row give the result of one chunk for the whole batch (f64, so that
    /// only a GEMM's order of sums could differ).
    #[test]
    fn chunking_does_not_change_the_result() {
        let (n, c_in, c_out, h, w) = (3, 5, 4, 9, 7);
        let mut seed = 1u64;
        let x = random(n * c_in * h * w, &mut seed);
        let weight = random(c_out * c_in * 9, &mut seed);
        let bias = random(c_out, &mut seed);
        for tile in [Tile::F2, Tile::F4] {
            let u = transform_weights(&weight, c_out, c_in, tile, false);
            let dims = (n, c_in, h, w);
            let u = Kernels {
                u: &u,
                adjoint: false,
            };
            let run = |max_bytes, min_tiles| {
                let x = Input::unmasked(&x);
                let chunks = Chunks {
                    max_bytes,
                    min_tiles,
                };
                conv3x3_in(x, dims, tile, u, c_out, Some(&bias), 1, true, chunks)
            };
            let whole = run(usize::MAX, 1);
            assert!(whole.iter().any(|&v| v > 0.0));
            // One tile row a chunk; a floor of 5 tiles (two rows of F(2×2)'s four tiles, three of
            // F(4×4)'s two); the default.
            for (max_bytes, min_tiles) in [(1, 1), (1, 5), (Chunks::of(tile).max_bytes, 128)] {
                let chunked = run(max_bytes, min_tiles);
                assert!(
                    slice_bits(&whole) == slice_bits(&chunked),
                    "{tile:?}: chunks of {max_bytes} bytes and {min_tiles} tiles differ"
                );
            }
        }
    }

    /// Chunks hold whole tile rows: as many as the bytes allow, at least enough for the floor
    /// of tiles, at least one, at most all.
    #[test]
    fn chunks_take_the_rows_the_bytes_and_the_floor_allow() {
        let f4 = Chunks::of(Tile::F4);
        // VGG16's 64 → 64 layer at 224 px: 56 tiles a row of 36·128·56·4 bytes (1 MiB), so the
        // floor of 128 tiles decides: three rows.
        let per_row = 36 * 128 * 56 * 4;
        assert_eq!(f4.rows(per_row, 56, 56), 3);
        // ResNet50's 64 → 64 layer at 56 px: 14 tiles a row of 258 KiB: four rows fit 1 MiB,
        // ten reach 128 tiles.
        assert_eq!(f4.rows(36 * 128 * 14 * 4, 14, 14 * 8), 10);
        // Small layers of 512 channels at 28 px: 7 tiles a row of 1 MiB each.
        assert_eq!(f4.rows(36 * 1024 * 7 * 4, 7, 7 * 8), 19);
        // Never more rows than there are, never none.
        assert_eq!(f4.rows(per_row, 56, 2), 2);
        let f2 = Chunks::of(Tile::F2);
        assert_eq!(f2.rows(usize::MAX, 1, 9), 1);
        assert_eq!(f2.rows(16 * 128 * 112 * 4, 112, 112), 27);
    }

    /// A thread's reused scratch holds the last call's values; after a call that left NaN in
    /// all of it, a convolution gives the values a fresh thread gives, bit for bit (every
    /// element of `V` and `M` is written before it is read): both tiles, the forward kernels
    /// and the adjoint ones, one chunk and chunks of one tile row.
    #[test]
    fn stale_scratch_does_not_change_the_result() {
        let (n, c_in, c_out, h, w) = (2, 3, 5, 10, 9);
        let mut seed = 7u64;
        let x = random(n * c_in * h * w, &mut seed);
        let weight = random(c_out * c_in * 9, &mut seed);
        for (tile, adjoint, budget) in [
            (Tile::F2, false, usize::MAX),
            (Tile::F4, false, 1),
            (Tile::F2, true, 1),
            (Tile::F4, false, usize::MAX),
        ] {
            // The adjoint reads the layer's kernels with its outputs as the call's inputs.
            let (layer_out, layer_in) = if adjoint {
                (c_in, c_out)
            } else {
                (c_out, c_in)
            };
            let u = transform_weights(&weight, layer_out, layer_in, tile, false);
            let run = || {
                let u = Kernels { u: &u, adjoint };
                let x = Input::unmasked(&x);
                let chunks = Chunks {
                    max_bytes: budget,
                    min_tiles: 1,
                };
                conv3x3_in(x, (n, c_in, h, w), tile, u, c_out, None, 1, false, chunks)
            };
            let fresh = std::thread::scope(|s| s.spawn(run).join().expect("no panic"));
            with_scratch::<f64, _>(1 << 16, |s| s.fill(f64::NAN));
            let stale = run();
            assert!(fresh.iter().all(|v| v.is_finite()));
            assert!(
                slice_bits(&fresh) == slice_bits(&stale),
                "{tile:?}, adjoint {adjoint}, budget {budget}"
            );
        }
    }

    /// A row split into phases holds each padded column where the scatter puts it and zeros
    /// everywhere else, whatever `dr` held before: rows of 3 to 130 values, paddings 0–2, both
    /// tile sizes, padding rows, `f64` and `f32` (whose runs x86-64 transposes in registers).
    #[test]
    fn rows_in_phases_are_the_scatter_of_the_padded_row() {
        for (m, w, p) in [2usize, 4]
            .into_iter()
            .flat_map(|m| [3, 5, 14, 63, 64, 65, 70, 130].map(move |w| (m, w)))
            .flat_map(|(m, w)| [0, 1, 2].map(move |p| (m, w, p)))
        {
            let tw: usize = (w + 2 * p - 2usize).div_ceil(m);
            let len = tw + 1;
            let input: Vec<f64> = (0..w).map(|i| i as f64 + 1.0).collect();
            let mut want = vec![0.0; m * len];
            for (ix, &v) in input.iter().enumerate() {
                let j = ix + p;
                want[(j % m) * len + j / m] = v;
            }
            let phases = |input: Option<&[f64]>, dr: &mut [f64]| match m {
                2 => F2x3::into_phases(input, p, dr),
                _ => F4x3::into_phases(input, p, dr),
            };
            let mut dr = vec![f64::NAN; m * len];
            phases(Some(&input), &mut dr);
            assert_eq!(dr, want, "m {m}, width {w}, padding {p}");
            let mut dr = vec![f64::NAN; m * len];
            phases(None, &mut dr);
            assert!(dr.iter().all(|&v| v == 0.0));
            // `f32` rows take the vector transpose on x86-64.
            let input: Vec<f32> = input.iter().map(|&v| v as f32).collect();
            let want: Vec<f32> = want.iter().map(|&v| v as f32).collect();
            let mut dr = vec![f32::NAN; m * len];
            match m {
                2 => F2x3::into_phases(Some(&input), p, &mut dr),
                _ => F4x3::into_phases(Some(&input), p, &mut dr),
            }
            assert_eq!(dr, want, "f32, m {m}, width {w}, padding {p}");
        }
    }

    /// The vector paths give the scalar path's values bit for bit: both schemes, rows of fewer
    /// than 4 tiles (scalar only), 4 and more (the last block overlapping the one before),
    /// paddings 0–2, bias and ReLU, NaN and −0 among the values.
    #[test]
    fn simd_transforms_equal_the_scalar_ones_bit_for_bit() {
        fn same(a: &[f32], b: &[f32]) -> bool {
            a.iter()
                .zip(b)
                .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
        }
        fn check<S: Scheme>(name: &str) {
            let mut seed = 3u64;
            for (n, h, w, p) in [
                (1, 5, 5, 1),
                (2, 8, 13, 0),
                (1, 14, 30, 1),
                (3, 7, 11, 2),
                (1, 70, 70, 1),
            ] {
                let (ho, wo): (usize, usize) = (h + 2 * p - 2, w + 2 * p - 2);
                let (th, tw) = (ho.div_ceil(S::M), wo.div_ceil(S::M));
                let xi = S::A * S::A;
                let mut x: Vec<f32> = random(n * h * w, &mut seed)
                    .iter()
                    .map(|&v| v as f32)
                    .collect();
                x[3] = f32::NAN;
                x[5] = -0.0;
                x[7] = 0.0;
                let mut mc: Vec<f32> = random(xi * n * th * tw, &mut seed)
                    .iter()
                    .map(|&v| v as f32)
                    .collect();
                mc[1] = f32::NAN;
                mc[2] = -0.0;
                let run = |simd: bool, bias: f32, relu: bool| {
                    let plan = Plan {
                        c_in: 1,
                        h,
                        w,
                        ho,
                        wo,
                        th,
                        tw,
                        p,
                        simd,
                    };
                    let mut v = vec![0f32; xi * n * th * tw];
                    let input = Input::unmasked(&x);
                    input_transform::<f32, S>(input, &plan, 0, 0..n * th, &mut v);
                    let mut y = vec![0f32; n * ho * wo];
                    let mut planes: Vec<&mut [f32]> = y.chunks_mut(ho * wo).collect();
                    output_transform::<f32, S>(&mc, &plan, 0..n * th, bias, relu, &mut planes);
                    (v, y)
                };
                for (bias, relu) in [(0.0, false), (0.0, true), (0.25, true), (-0.5, false)] {
                    let (v0, y0) = run(false, bias, relu);
                    let (v1, y1) = run(true, bias, relu);
                    let case = format!("{name} {n}×{h}×{w} p {p}, bias {bias}, relu {relu}");
                    assert!(same(&v0, &v1), "input transform differs: {case}");
                    assert!(same(&y0, &y1), "output transform differs: {case}");
                }
            }
        }
        check::<F2x3>("F(2×2, 3×3)");
        check::<F4x3>("F(4×4, 3×3)");
        // A vector path does run (on x86-64), for f32 rows of at least 4 tiles only.
        let (len, tw) = (5, 4);
        let d = vec![0f32; 4 * 2 * len];
        let mut out = vec![0f32; 16 * tw];
        assert_eq!(
            simd::input_row::<f32, F2x3>(&d, len, tw, tw, &mut out),
            cfg!(target_arch = "x86_64")
        );
        let d64 = vec![0f64; 4 * 2 * len];
        let mut out64 = vec![0f64; 16 * tw];
        assert!(!simd::input_row::<f64, F2x3>(&d64, len, tw, tw, &mut out64));
        assert!(!simd::input_row::<f32, F2x3>(&d, len, 3, 3, &mut out));
    }
    /// Each vector width this CPU has gives the scalar path's rows bit for bit, on rows it fills
    /// exactly, rows with a partial last block (which overlaps the one before) and rows wider
    /// than the tile stride's minimum, with NaN and −0 among the values.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn every_vector_width_equals_the_scalar_rows_bit_for_bit() {
        use simd::Width;
        fn bits(v: &[f32]) -> Vec<u32> {
            v.iter()
                .map(|x| if x.is_nan() { u32::MAX } else { x.to_bits() })
                .collect()
        }
        fn check<S: Scheme>(seed: &mut u64) -> usize {
            let (m, a) = (S::M, S::A);
            let mut checked = 0;
            for tw in [4, 5, 7, 8, 9, 15, 16, 17, 23, 31, 32, 33, 56] {
                let (len, tiles) = (tw + 1, tw + 3);
                let mut d: Vec<f32> = random(a * m * len, seed)
                    .iter()
                    .map(|&v| v as f32)
                    .collect();
                d[1] = f32::NAN;
                d[2] = -0.0;
                let mut t = vec![0f32; a * m * len];
                let mut v0 = vec![7f32; a * a * tiles];
                input_row::<f32, S>(&d, &mut t, len, tw, tiles, &mut v0);
                let mc: Vec<f32> = random(a * a * tiles, seed)
                    .iter()
                    .map(|&v| v as f32)
                    .collect();
                let mut s = vec![0f32; m * a * tw];
                for width in Width::ALL.into_iter().filter(|w| w.available()) {
                    let mut v1 = vec![7f32; a * a * tiles];
                    let ran = simd::input_row_at::<f32, S>(width, &d, len, tw, tiles, &mut v1);
                    assert_eq!(ran, width.lanes() <= tw, "{width:?}, {tw} tiles");
                    if !ran {
                        continue;
                    }
                    assert_eq!(bits(&v0), bits(&v1), "input row, {width:?}, {tw} tiles");
                    for (bias, relu) in [(0.0, false), (0.0, true), (0.25, true), (-0.5, false)] {
                        let mut y0 = vec![7f32; m * m * tw];
                        output_row::<f32, S>(&mc, tw, tiles, bias, relu, &mut s, &mut y0);
                        let mut y1 = vec![7f32; m * m * tw];
                        assert!(simd::output_row_at::<f32, S>(
                            width, &mc, tw, tiles, bias, relu, &mut y1
                        ));
                        let case = format!("{width:?}, {tw} tiles, bias {bias}, relu {relu}");
                        assert_eq!(bits(&y0), bits(&y1), "output row, {case}");
                    }
                    checked += 1;
                }
            }
            checked
        }
        let mut seed = 11u64;
        let checked = check::<F2x3>(&mut seed) + check::<F4x3>(&mut seed);
        // SSE at least, on every row of both schemes.
        assert!(checked >= 26, "{checked} rows checked");
    }
}
