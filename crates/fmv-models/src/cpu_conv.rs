//! fmv's own convolution for the CPU: im2col straight into one GEMM per image and group, on
//! the NCHW layout the networks already use, with the bias (and, where the caller asks, the
//! ReLU) applied in the same pass; and the input gradient as the transposed GEMM plus col2im.
//!
//! Why: candle 0.11's CPU `conv2d` re-lays out the kernel and copies the input NCHW→NHWC on
//! every call, serially, and its `conv_transpose2d` is a direct loop; together they ran at
//! 30–40 % of the GEMM ceiling (`docs/PERFORMANCE.md`). Here the weights are used as stored
//! (a `(c_out, c_in/groups, kh, kw)` tensor is already the row-major `c_out × K` matrix the
//! GEMM wants), a 1×1 stride-1 convolution reads its input in place, and the unfolding is
//! spread over the threads.
//!
//! Results do not depend on the thread count: the GEMM splits the output, never the sum.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Shape, Tensor, WithDType};
use std::ops::Range;

use rayon::prelude::*;

use crate::winograd::{self, Kernels, Tile};

/// The shape of a convolution: everything but its weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConvGeometry {
    pub c_in: usize,
    pub c_out: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub padding: usize,
    pub groups: usize,
}

impl ConvGeometry {
    fn out_len(&self, len: usize, k: usize) -> Option<usize> {
        (len + 2 * self.padding)
            .checked_sub(k)
            .map(|d| d / self.stride + 1)
    }

    /// Output height and width for an `h × w` input, `None` when the kernel does not fit.
    pub fn out_hw(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        Some((self.out_len(h, self.kh)?, self.out_len(w, self.kw)?))
    }

    /// Rows of the unfolded input of one group: `c_in/groups · kh · kw`.
    fn k(&self) -> usize {
        self.c_in / self.groups * self.kh * self.kw
    }

    /// Whether [`crate::winograd`] computes this convolution and its input gradient: 3×3,
    /// stride 1, one group, padding at most 2.
    pub fn takes_winograd(&self) -> bool {
        self.kh == 3 && self.kw == 3 && self.stride == 1 && self.groups == 1 && self.padding <= 2
    }

    /// A 1×1 stride-1 unpadded convolution is a plain GEMM on the input as it lies.
    fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == 1 && self.padding == 0
    }
}

/// `max(v, 0)`, with NaN mapped to 0 like candle's `relu`.
pub(crate) fn relu_of<T: Float>(v: T) -> T {
    if v > T::zero() { v } else { T::zero() }
}

/// `len` zeros, written by every thread when there are many: a buffer this large comes from
/// glibc's reused heap (`fmv_core::tune_glibc_malloc`), which zeroes it with one
/// thread's `memset`, a few per cent of a patterns step at 448 px.
pub(crate) fn zeroed<T: Float>(len: usize) -> Vec<T> {
    if len < 1 << 16 {
        return vec![T::zero(); len];
    }
    filled_in_runs(len, ELEMENTWISE_RUN, |_| T::zero())
}

/// `len` elements in runs of `run` (the last one may be shorter), each element of run `i`
/// equal to `value(i)`, written once, in parallel. With `run` a plane's size, the runs are
/// planes: a convolution's output starts as its bias this way.
pub(crate) fn filled_in_runs<T: Float>(
    len: usize,
    run: usize,
    value: impl Fn(usize) -> T + Sync,
) -> Vec<T> {
    // SAFETY: the loop writes every slot of the run.
    unsafe {
        written_in_runs(len, run, |i, run| {
            let v = value(i);
            for o in run {
                o.write(v);
            }
        })
    }
}

/// `len` elements written once, in parallel, in runs of `run` (the last one may be shorter):
/// `write(i, slots)` is given run `i`'s slots.
///
/// # Safety
///
/// `write` must write every slot it is given: the vector's elements are those slots.
unsafe fn written_in_runs<T: Float>(
    len: usize,
    run: usize,
    write: impl Fn(usize, &mut [std::mem::MaybeUninit<T>]) + Sync,
) -> Vec<T> {
    let mut out = Vec::with_capacity(len);
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(run.max(1))
        .enumerate()
        .for_each(|(i, slots)| write(i, slots));
    // SAFETY: the runs above cover the first `len` elements, and `write` wrote each of them
    // (the caller's guarantee).
    unsafe { out.set_len(len) };
    out
}

/// The element types the CPU convolution runs in (those `gemm` multiplies).
pub(crate) trait Float: WithDType + Copy + Send + Sync + PartialOrd + 'static {}
impl Float for f32 {}
impl Float for f64 {}

/// Whether fmv's CPU convolution serves a tensor: a CPU tensor of `f32` or `f64`.
pub(crate) fn serves(x: &Tensor) -> bool {
    x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64)
}

fn threads() -> gemm::Parallelism {
    match rayon::current_num_threads() {
        0 | 1 => gemm::Parallelism::None,
        n => gemm::Parallelism::Rayon(n),
    }
}

/// The columns of each part when [`matmul`] splits a wide product by hand.
const COLUMN_CHUNK: usize = 2048;

/// A buffer's base pointer, shared by the threads that write disjoint elements of it.
#[derive(Clone, Copy)]
pub(crate) struct SharedOut<T>(pub *mut T);

// SAFETY: only a pointer; whoever writes through it guarantees the elements are disjoint.
unsafe impl<T: Send> Send for SharedOut<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for SharedOut<T> {}

impl<T> SharedOut<T> {
    /// The element `offset` past the base. (A method, so that closures capture the whole
    /// `Sync` wrapper, not the raw pointer field.)
    pub fn at(self, offset: usize) -> *mut T {
        self.0.wrapping_add(offset)
    }
}

/// `dst (m × n) = [dst +] lhs (m × k) · rhs (k × n)`, every operand given by its strides
/// (dst's rows `dst_rs` apart, its columns adjacent), over rayon's threads.
///
/// A wide product (at least four parts of [`COLUMN_CHUNK`] columns) is split into such parts by
/// hand, each multiplied on one thread; others are split by `gemm` itself. For the products of
/// a few rows and tens of thousands of columns that large maps make (64 × 61009 × 256 and
/// 64 × 42398 × 147 at 986 px), `gemm`'s own split reached 72–81 GFLOP/s on a 2-core VM, the
/// parts 92–108 (`docs/PERFORMANCE.md`, attempt 27). `gemm` gives each column of `dst` the same
/// sum either way, so the result is the same bit for bit whatever the number of threads.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul<T: Float>(
    dst: &mut [T],
    dst_rs: usize,
    accumulate: bool,
    (m, n, k): (usize, usize, usize),
    lhs: &[T],
    lhs_strides: (usize, usize),
    rhs: &[T],
    rhs_strides: (usize, usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        dst.len() > (m - 1) * dst_rs + n - 1,
        "gemm destination too small"
    );
    let parallelism = threads();
    if matches!(parallelism, gemm::Parallelism::Rayon(_)) && n >= 4 * COLUMN_CHUNK {
        let out = SharedOut(dst.as_mut_ptr());
        (0..n.div_ceil(COLUMN_CHUNK))
            .into_par_iter()
            .for_each(|part| {
                let first = part * COLUMN_CHUNK;
                let cols = COLUMN_CHUNK.min(n - first);
                // SAFETY: part `part` writes the columns `first..first + cols` of the rows of
                // `dst`, inside it by the assert above and disjoint from every other part's;
                // `dst` is borrowed mutably for the whole call.
                unsafe {
                    matmul_into(
                        out.at(first),
                        dst_rs,
                        accumulate,
                        (m, cols, k),
                        lhs,
                        lhs_strides,
                        &rhs[first * rhs_strides.1..],
                        rhs_strides,
                        gemm::Parallelism::None,
                    )
                }
            });
        return;
    }
    // SAFETY: the assert keeps every element written inside `dst`, which is borrowed mutably.
    unsafe {
        matmul_into(
            dst.as_mut_ptr(),
            dst_rs,
            accumulate,
            (m, n, k),
            lhs,
            lhs_strides,
            rhs,
            rhs_strides,
            parallelism,
        )
    }
}

/// The one call into `gemm`: [`matmul`] into a raw destination, with the parallelism given
/// (several products can then run side by side, each on one thread, into disjoint elements of
/// one buffer).
///
/// # Safety
///
/// Every element `dst + i·dst_rs + j` (`i < m`, `j < n`) must be valid for reads and writes,
/// not alias `lhs` or `rhs`, and not be accessed by another thread during the call.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn matmul_into<T: Float>(
    dst: *mut T,
    dst_rs: usize,
    accumulate: bool,
    (m, n, k): (usize, usize, usize),
    lhs: &[T],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[T],
    (rhs_rs, rhs_cs): (usize, usize),
    parallelism: gemm::Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(k == 0 || lhs.len() > (m - 1) * lhs_rs + (k - 1) * lhs_cs);
    assert!(k == 0 || rhs.len() > (k - 1) * rhs_rs + (n - 1) * rhs_cs);
    // SAFETY: the asserts keep every index gemm reads inside `lhs` and `rhs`; the caller
    // guarantees the destination's elements.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            T::one(),
            T::one(),
            false,
            false,
            false,
            parallelism,
        )
    }
}

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
/// the sum is fixed.
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
                    for (ox, &v) in src[lo..hi].iter().enumerate() {
                        dst[(lo + ox) * s + kx - p] += v;
                    }
                }
            }
        });
}

/// Bytes of unfolded input (im2col) a convolution works in at most: it is unfolded a band of
/// output rows at a time (the stem of a ResNet at 986 px would otherwise take 143 MB, twice
/// over in a gradient step).
const COL_BYTES: usize = 24 << 20;

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
fn forward<T: Float>(
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
fn input_grad<T: Float>(
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

/// The slice behind a contiguous CPU tensor.
pub(crate) fn host_slice<'a, T: Float>(
    s: &'a CpuStorage,
    l: &Layout,
) -> candle_core::Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&s.as_slice::<T>()?[start..end]),
        None => candle_core::bail!("fmv conv: expected a contiguous tensor"),
    }
}

/// Runs `f` on the weight (and bias) slices of CPU tensors of the element type `T`.
fn with_host<T: Float, R>(
    tensors: &[Option<&Tensor>],
    f: impl FnOnce(&[Option<&[T]>]) -> candle_core::Result<R>,
) -> candle_core::Result<R> {
    let guards: Vec<_> = tensors
        .iter()
        .map(|t| t.map(|t| t.storage_and_layout()))
        .collect();
    let mut slices = Vec::with_capacity(guards.len());
    for g in &guards {
        slices.push(match g {
            None => None,
            Some((storage, layout)) => match &**storage {
                candle_core::Storage::Cpu(s) => Some(host_slice::<T>(s, layout)?),
                _ => candle_core::bail!("fmv conv: weights are not on the CPU"),
            },
        });
    }
    f(&slices)
}

fn dims4(l: &Layout, g: &ConvGeometry, what: &str) -> candle_core::Result<(usize, usize, usize)> {
    let (n, c, h, w) = l.shape().dims4()?;
    let expect = if what == "input" { g.c_in } else { g.c_out };
    if c != expect {
        candle_core::bail!("fmv conv: {what} has {c} channels, the layer expects {expect}");
    }
    Ok((n, h, w))
}

/// Runs `$body` with `$t` the storage's element type (`f32` or `f64`) and wraps the `Vec` it
/// returns as a storage of that type; other types are an error naming the op.
macro_rules! in_float_type {
    ($storage:expr, $op:literal, $t:ident => $body:expr) => {
        match $storage {
            CpuStorage::F32(_) => {
                type $t = f32;
                CpuStorage::F32($body)
            }
            CpuStorage::F64(_) => {
                type $t = f64;
                CpuStorage::F64($body)
            }
            other => candle_core::bail!("fmv {}: unsupported dtype {:?}", $op, other.dtype()),
        }
    };
}
pub(crate) use in_float_type;

/// The convolution (bias and optional ReLU fused) as a candle op on the CPU. Applied with
/// `apply_op1_no_bwd` for inference; applied with `apply_op1` on a tracked input its backward
/// pass gives the input's gradient only (the ReLU's mask, then [`ConvInputGrad`]), never the
/// weights'.
pub(crate) struct ConvOp {
    pub geometry: ConvGeometry,
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    /// The Winograd tile the kernels below were transformed for.
    pub tile: Tile,
    /// The Winograd-transformed kernels, for a geometry that [`ConvGeometry::takes_winograd`];
    /// with [`Tile::F2`] the backward pass reads them too.
    pub winograd: Option<Tensor>,
    pub relu: bool,
}

impl ConvOp {
    /// The output's shape for an input laid out as `l`, or the error saying why the layer
    /// cannot take it.
    fn out_shape(&self, l: &Layout) -> candle_core::Result<Shape> {
        let g = &self.geometry;
        let (n, h, w) = dims4(l, g, "input")?;
        let Some((ho, wo)) = g.out_hw(h, w) else {
            candle_core::bail!(
                "fmv conv: a {h}×{w} input is smaller than the {}×{} kernel",
                g.kh,
                g.kw
            )
        };
        Ok(Shape::from((n, g.c_out, ho, wo)))
    }

    /// The output for an input [`ConvOp::out_shape`] accepted.
    fn run<T: Float>(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<Vec<T>> {
        let g = &self.geometry;
        let (n, h, w) = dims4(l, g, "input")?;
        let x = host_slice::<T>(s, l)?;
        let tensors = [
            Some(&self.weight),
            self.bias.as_ref(),
            self.winograd.as_ref(),
        ];
        let y = with_host::<T, _>(&tensors, |ws| {
            let weight = ws[0].expect("the weight is always given");
            Ok(match ws[2] {
                Some(u) if g.takes_winograd() => {
                    let dims = (n, g.c_in, h, w);
                    let u = Kernels { u, adjoint: false };
                    winograd::conv3x3(x, dims, self.tile, u, g.c_out, ws[1], g.padding, self.relu)
                }
                _ => forward(x, (n, h, w), weight, ws[1], g, self.relu, COL_BYTES),
            })
        })?;
        Ok(y)
    }
}

impl ConvOp {
    /// The input gradient of this convolution for an input of `input_hw`.
    pub fn input_grad(&self, input_hw: (usize, usize)) -> ConvInputGrad {
        ConvInputGrad {
            geometry: self.geometry,
            weight: self.weight.clone(),
            tile: self.tile,
            winograd: self.winograd.clone(),
            input_hw,
            relu: self.relu,
        }
    }
}

impl CustomOp1 for ConvOp {
    fn name(&self) -> &'static str {
        "fmv-conv2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let shape = self.out_shape(l)?;
        Ok((in_float_type!(s, "conv", T => self.run::<T>(s, l)?), shape))
    }

    fn bwd(&self, x: &Tensor, y: &Tensor, dy: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let (_, _, h, w) = x.dims4()?;
        // The second argument is the forward output, read only for the ReLU's mask.
        let dx = dy
            .contiguous()?
            .apply_op2_no_bwd(&y.contiguous()?, &self.input_grad((h, w)))?;
        Ok(Some(dx))
    }
}

/// The input gradient of a convolution, applied to `dy` (masked by `y > 0` first when the
/// convolution's ReLU was fused), for an input of `input_hw`. A [`CustomOp2`] on `(dy, y)`.
pub(crate) struct ConvInputGrad {
    pub geometry: ConvGeometry,
    pub weight: Tensor,
    /// The Winograd tile the kernels below were transformed for.
    pub tile: Tile,
    /// The layer's own F(2×2, 3×3) kernels, read as those of the transposed convolution
    /// ([`Kernels::adjoint`]), for a geometry that [`ConvGeometry::takes_winograd`].
    pub winograd: Option<Tensor>,
    pub input_hw: (usize, usize),
    pub relu: bool,
}

impl ConvInputGrad {
    fn run<T: Float>(
        &self,
        (s, l): (&CpuStorage, &Layout),
        (ys, yl): (&CpuStorage, &Layout),
    ) -> candle_core::Result<Vec<T>> {
        let g = &self.geometry;
        let (n, ho, wo) = dims4(l, g, "output gradient")?;
        let (h, w) = self.input_hw;
        if g.out_hw(h, w) != Some((ho, wo)) {
            candle_core::bail!("fmv conv: a {ho}×{wo} gradient does not match a {h}×{w} input")
        }
        if self.winograd.is_some() && self.tile != Tile::F2 {
            candle_core::bail!("fmv conv: only F(2×2, 3×3) kernels give an input gradient");
        }
        let dy = host_slice::<T>(s, l)?;
        let masked;
        let dy = if self.relu {
            let y = host_slice::<T>(ys, yl)?;
            if y.len() != dy.len() {
                candle_core::bail!("fmv conv: the ReLU mask does not match the gradient");
            }
            masked = zip_map::<ReluGrad, T>(dy, y);
            &masked[..]
        } else {
            dy
        };
        let dx = with_host::<T, _>(&[Some(&self.weight), self.winograd.as_ref()], |ws| {
            Ok(match ws[1] {
                Some(u) if g.takes_winograd() => {
                    let dims = (n, g.c_out, ho, wo);
                    let u = Kernels { u, adjoint: true };
                    winograd::conv3x3(dy, dims, self.tile, u, g.c_in, None, 2 - g.padding, false)
                }
                _ => input_grad(dy, (n, h, w), ws[0].expect("given"), g, COL_BYTES),
            })
        })?;
        Ok(dx)
    }
}

impl CustomOp2 for ConvInputGrad {
    fn name(&self) -> &'static str {
        "fmv-conv2d-input-grad"
    }

    fn cpu_fwd(
        &self,
        s: &CpuStorage,
        l: &Layout,
        ys: &CpuStorage,
        yl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, _, _, _) = l.shape().dims4()?;
        let (h, w) = self.input_hw;
        let dx = in_float_type!(s, "conv input gradient", T => self.run::<T>((s, l), (ys, yl))?);
        Ok((dx, Shape::from((n, self.geometry.c_in, h, w))))
    }
}

/// An element-wise op on two contiguous CPU tensors of one shape: run by [`elementwise`], and
/// as a candle op by [`ElementwiseOp`].
pub(crate) trait Elementwise {
    /// The op's name, in candle's graph and in errors.
    const NAME: &'static str;
    /// The output element for the inputs' elements `a` and `b`.
    fn apply<T: Float>(a: T, b: T) -> T;
    /// The gradients of both inputs from the output `y` and its gradient `dy`; by default the
    /// op has no backward pass.
    fn backward(
        _y: &Tensor,
        _dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        Err(candle_core::Error::BackwardNotSupported { op: Self::NAME })
    }
}

/// [`Elementwise`] op `E` as a candle op ([`CustomOp2`]) on the CPU.
pub(crate) struct ElementwiseOp<E>(std::marker::PhantomData<fn() -> E>);

/// The candle op of [`Elementwise`] op `E`.
pub(crate) fn op<E: Elementwise>() -> ElementwiseOp<E> {
    ElementwiseOp(std::marker::PhantomData)
}

impl<E: Elementwise> CustomOp2 for ElementwiseOp<E> {
    fn name(&self) -> &'static str {
        E::NAME
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        elementwise::<E>((s1, l1), (s2, l2))
    }

    fn bwd(
        &self,
        _a: &Tensor,
        _b: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        E::backward(y, dy)
    }
}

/// `E::apply` element by element over two slices of one length, in parallel: each thread
/// takes runs of [`ELEMENTWISE_RUN`] elements, a plain loop the compiler vectorises, and
/// writes the output once (no zeroing first).
fn zip_map<E: Elementwise, T: Float>(a: &[T], b: &[T]) -> Vec<T> {
    assert_eq!(a.len(), b.len(), "zip_map: lengths differ");
    // SAFETY: `a` and `b` hold as many elements as the run from its start (the slices would
    // panic otherwise), so the zipped loop writes every slot of the run.
    unsafe {
        written_in_runs(a.len(), ELEMENTWISE_RUN, |i, out| {
            let start = i * ELEMENTWISE_RUN;
            let (a, b) = (&a[start..][..out.len()], &b[start..][..out.len()]);
            for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
                o.write(E::apply(a, b));
            }
        })
    }
}

/// Elements per run of [`zip_map`]: 64 KiB of `f32`.
const ELEMENTWISE_RUN: usize = 1 << 14;

/// [`Elementwise`] op `E` as a candle op's CPU forward pass: the shapes must agree.
pub(crate) fn elementwise<E: Elementwise>(
    (s1, l1): (&CpuStorage, &Layout),
    (s2, l2): (&CpuStorage, &Layout),
) -> candle_core::Result<(CpuStorage, Shape)> {
    if l1.shape() != l2.shape() {
        candle_core::bail!(
            "{}: shapes {:?} and {:?} differ",
            E::NAME,
            l1.shape(),
            l2.shape()
        );
    }
    let out = match s1 {
        CpuStorage::F32(_) => {
            CpuStorage::F32(zip_map::<E, f32>(host_slice(s1, l1)?, host_slice(s2, l2)?))
        }
        CpuStorage::F64(_) => {
            CpuStorage::F64(zip_map::<E, f64>(host_slice(s1, l1)?, host_slice(s2, l2)?))
        }
        other => candle_core::bail!("{}: unsupported dtype {:?}", E::NAME, other.dtype()),
    };
    Ok((out, l1.shape().clone()))
}

/// `relu(a + b)` for two contiguous CPU tensors of one shape (a residual block's end), with a
/// backward pass that sends the masked gradient to both.
pub(crate) struct AddRelu;

impl Elementwise for AddRelu {
    const NAME: &'static str = "fmv-add-relu";
    fn apply<T: Float>(a: T, b: T) -> T {
        relu_of(a + b)
    }
    fn backward(y: &Tensor, dy: &Tensor) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let g = dy.contiguous()?.apply_op2_no_bwd(y, &op::<ReluGrad>())?;
        Ok((Some(g.clone()), Some(g)))
    }
}

/// `dy` where `y > 0`, else 0 (the gradient through a ReLU whose output is `y`), as a candle
/// op on `(dy, y)`.
pub(crate) struct ReluGrad;

impl Elementwise for ReluGrad {
    const NAME: &'static str = "fmv-relu-grad";
    fn apply<T: Float>(dy: T, y: T) -> T {
        if y > T::zero() { dy } else { T::zero() }
    }
}

#[cfg(test)]
mod tests {
    //! Against candle's own `conv2d` / `conv_transpose2d`: an independent implementation of
    //! the same operation, in f64 so that only the order of sums differs.

    use super::*;
    use crate::test_data::{max_abs_diff, random};

    /// (c_in, c_out, k, stride, padding, groups, h, w)
    type Case = (usize, usize, usize, usize, usize, usize, usize, usize);
    /// The last two have maps of at least [`STACK_BELOW`] pixels (one GEMM per image).
    const CASES: [Case; 12] = [
        (3, 8, 7, 2, 3, 1, 19, 23),
        (8, 6, 3, 1, 1, 1, 9, 7),
        (8, 8, 3, 2, 1, 2, 10, 11),
        (6, 12, 1, 1, 0, 1, 5, 8),
        (6, 12, 1, 2, 0, 1, 7, 6),
        (4, 4, 3, 1, 1, 4, 6, 6),
        (5, 7, 2, 2, 0, 1, 8, 9),
        (5, 7, 3, 1, 0, 1, 8, 9),
        (7, 5, 3, 1, 2, 1, 5, 4),
        (16, 9, 3, 1, 1, 1, 1, 2),
        (2, 3, 3, 1, 1, 1, 40, 30),
        (4, 5, 1, 1, 0, 1, 33, 33),
    ];

    /// Every run gets its own value, the last one short; nothing is left unwritten, at the
    /// sizes where `zeroed` switches to writing in parallel too.
    #[test]
    fn filled_in_runs_writes_every_element_with_its_runs_value() {
        for (len, run) in [(0, 0), (0, 5), (1, 5), (17, 5), (20, 5), (100_003, 1000)] {
            let v = filled_in_runs(len, run, |i| i as f32 + 0.5);
            assert_eq!(v.len(), len);
            for (j, &x) in v.iter().enumerate() {
                assert_eq!(
                    x,
                    (j / run.max(1)) as f32 + 0.5,
                    "len {len}, run {run}, element {j}"
                );
            }
        }
        for len in [
            (1 << 16) - 1,
            1 << 16,
            (1 << 16) + 3,
            3 * ELEMENTWISE_RUN + 1,
        ] {
            let z = zeroed::<f64>(len);
            assert_eq!(z.len(), len);
            assert!(z.iter().all(|&x| x == 0.0), "zeroed({len})");
        }
    }

    /// A product wide enough to be split by columns gives the same bits on one, two and three
    /// threads, each element the exact sum within f32 rounding; strided operands, a padded
    /// destination and accumulation included, and nothing written past a row's `n` columns.
    #[test]
    fn a_wide_product_is_the_same_bit_for_bit_on_any_number_of_threads() {
        let (m, n, k) = (5, 4 * COLUMN_CHUNK + 123, 37);
        let dst_rs = n + 3;
        let values = |len: usize, seed: u64| -> Vec<f32> {
            let t = random(&[len], seed);
            t.to_vec1::<f64>()
                .unwrap()
                .iter()
                .map(|&v| v as f32)
                .collect()
        };
        // lhs stored transposed (k × m), rhs as it is (k × n).
        let (lhs, rhs, start) = (values(k * m, 1), values(k * n, 2), values(m * dst_rs, 3));
        let product = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut dst = start.clone();
            pool.install(|| {
                matmul(
                    &mut dst,
                    dst_rs,
                    true,
                    (m, n, k),
                    &lhs,
                    (1, m),
                    &rhs,
                    (n, 1),
                )
            });
            dst
        };
        let one = product(1);
        for threads in [2, 3] {
            let many = product(threads);
            assert!(
                one.iter()
                    .zip(&many)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{threads} threads differ from one"
            );
        }
        for i in 0..m {
            for j in 0..dst_rs {
                let got = one[i * dst_rs + j] as f64;
                let was = start[i * dst_rs + j] as f64;
                if j >= n {
                    assert_eq!(got, was, "padding ({i}, {j}) written");
                    continue;
                }
                let sum: f64 = (0..k)
                    .map(|p| lhs[p * m + i] as f64 * rhs[p * n + j] as f64)
                    .sum();
                assert!(
                    (got - was - sum).abs() < 1e-5,
                    "({i}, {j}): {got} vs {}",
                    was + sum
                );
            }
        }
    }

    /// Each element-wise op against its scalar rule, over more than one run with a short last
    /// one.
    #[test]
    fn zip_map_applies_the_rule_to_every_pair() {
        let n = 2 * ELEMENTWISE_RUN + 7;
        let a: Vec<f32> = (0..n).map(|i| (i % 13) as f32 - 6.0).collect();
        let b: Vec<f32> = (0..n).map(|i| (i % 7) as f32 - 3.5).collect();
        let add_relu = zip_map::<AddRelu, f32>(&a, &b);
        let relu_grad = zip_map::<ReluGrad, f32>(&a, &b);
        assert_eq!((add_relu.len(), relu_grad.len()), (n, n));
        for i in 0..n {
            assert_eq!(add_relu[i], (a[i] + b[i]).max(0.0), "add-relu at {i}");
            assert_eq!(
                relu_grad[i],
                if b[i] > 0.0 { a[i] } else { 0.0 },
                "relu grad at {i}"
            );
        }
    }

    /// Runs every case through fmv's convolution and its input gradient, with and without the
    /// Winograd kernels where the geometry takes them, against candle's `conv2d` and
    /// `conv_transpose2d`.
    #[test]
    fn forward_and_input_grad_match_candle() {
        let mut winograd_cases = 0;
        for (i, &(c_in, c_out, k, stride, padding, groups, h, w)) in CASES.iter().enumerate() {
            let g = ConvGeometry {
                c_in,
                c_out,
                kh: k,
                kw: k,
                stride,
                padding,
                groups,
            };
            let x = random(&[2, c_in, h, w], i as u64);
            let weight = random(&[c_out, c_in / groups, k, k], 100 + i as u64);
            let bias = random(&[c_out], 200 + i as u64);
            let theirs = x
                .conv2d(&weight, padding, stride, 1, groups)
                .unwrap()
                .broadcast_add(&bias.reshape((1, c_out, 1, 1)).unwrap())
                .unwrap();
            let dy = random(theirs.dims(), 300 + i as u64);
            // dx through candle's conv_transpose2d, group by group: candle's own arithmetic.
            let expected_dx =
                crate::grad::conv_input_grad_transposed(&x, &dy, &weight, stride, padding, groups)
                    .unwrap();

            let mut variants = vec![(Tile::F2, None)];
            if g.takes_winograd() {
                winograd_cases += 1;
                for tile in [Tile::F2, Tile::F4] {
                    variants.push((tile, Some(winograd::kernels(&weight, tile).unwrap())));
                }
            }
            for (tile, wk) in &variants {
                let path = format!("{tile:?} {}", wk.is_some());
                for relu in [false, true] {
                    let ours = x
                        .apply_op1_no_bwd(&ConvOp {
                            geometry: g,
                            weight: weight.clone(),
                            bias: Some(bias.clone()),
                            tile: *tile,
                            winograd: wk.clone(),
                            relu,
                        })
                        .unwrap();
                    let reference = if relu {
                        theirs.relu().unwrap()
                    } else {
                        theirs.clone()
                    };
                    let d = max_abs_diff(&ours, &reference);
                    assert!(
                        d < 1e-12,
                        "case {i} path {path} relu {relu}: forward differs by {d}"
                    );
                }
                let op = ConvInputGrad {
                    geometry: g,
                    weight: weight.clone(),
                    tile: *tile,
                    winograd: wk.clone(),
                    input_hw: (h, w),
                    relu: false,
                };
                if *tile == Tile::F4 && wk.is_some() {
                    let err = dy.apply_op2_no_bwd(&dy, &op).unwrap_err();
                    assert!(err.to_string().contains("only F(2×2"), "{err}");
                    continue;
                }
                let dx = dy.apply_op2_no_bwd(&dy, &op).unwrap();
                let d = max_abs_diff(&dx, &expected_dx);
                assert!(
                    d < 1e-12,
                    "case {i} path {path}: input gradient differs by {d}"
                );
            }
        }
        assert_eq!(winograd_cases, 5);
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

    #[test]
    fn bad_shapes_are_errors() {
        let g = ConvGeometry {
            c_in: 3,
            c_out: 4,
            kh: 3,
            kw: 3,
            stride: 1,
            padding: 0,
            groups: 1,
        };
        let weight = random(&[4, 3, 3, 3], 1);
        let op = ConvOp {
            geometry: g,
            weight,
            bias: None,
            tile: Tile::F2,
            winograd: None,
            relu: false,
        };
        let err = random(&[1, 2, 5, 5], 2).apply_op1_no_bwd(&op).unwrap_err();
        assert!(err.to_string().contains("2 channels"), "{err}");
        let err = random(&[1, 3, 2, 5], 2).apply_op1_no_bwd(&op).unwrap_err();
        assert!(err.to_string().contains("smaller than"), "{err}");
    }
}
