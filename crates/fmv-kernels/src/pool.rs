//! Pooling as torch does it. [`max_pool2d`], `MaxPool2d(k, s, p)` (floor mode), runs fmv's own
//! op on the CPU, forward and backward, and candle's ops elsewhere; [`adaptive_avg_pool2d`] is
//! candle's ops everywhere.
//!
//! On the CPU the op's backward pass gives each output's gradient to the first maximum of its
//! window, scanned row by row, as torch's CPU kernel does. The differentiable pool that runs
//! on every device ([`max_pool2d_differentiable`]) is some twenty candle ops, each of whose
//! backward passes is several more full passes over the stem's maps (the largest of ResNet's),
//! one thread each; here the forward pass is one parallel sweep over the planes (two passes per
//! plane: rows, then columns) and the backward pass finds each window's maximum again (so
//! nothing is kept besides the input) and adds the gradient there. VGG's `MaxPool2d(2, 2, 0)`
//! has loops of its own for both, its gradient four windows at a time in SSE.

use std::mem::MaybeUninit;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::buffer::{host_slice, in_float_type, written_in_runs, zeroed};
use crate::float::{Float, as_f32, serves};
use crate::input_grad::max_pool2d_differentiable;

/// Max pooling as torch's `MaxPool2d(k, s, p)` (floor mode), differentiable with respect to a
/// tracked input on every device.
///
/// On the CPU (`f32`, `f64`), fmv's own op, forward and backward. Elsewhere candle's, after
/// padding that repeats the edge (`pad_with_same`), which gives the same maxima as torch's −∞
/// padding because torch requires `p ≤ k/2`: every window that covers a padded position also
/// covers the edge value it repeats; a tracked input takes [`max_pool2d_differentiable`] there.
///
/// ```
/// use candle_core::{Device, Tensor};
/// let x = Tensor::new(&[[[[1f32, 5.], [3., 2.]]]], &Device::Cpu)?;
/// let y = fmv_kernels::max_pool2d(&x, 2, 2, 0)?;
/// assert_eq!(y.flatten_all()?.to_vec1::<f32>()?, [5.0]);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn max_pool2d(x: &Tensor, k: usize, s: usize, p: usize) -> candle_core::Result<Tensor> {
    if serves(x) {
        let pool = MaxPool { k, s, p };
        let x = x.contiguous()?;
        return if x.track_op() {
            x.apply_op1(pool)
        } else {
            x.apply_op1_no_bwd(&pool)
        };
    }
    if x.track_op() {
        return max_pool2d_differentiable(x, k, s, p);
    }
    let x = if p > 0 {
        x.pad_with_same(2, p, p)?.pad_with_same(3, p, p)?
    } else {
        x.clone()
    };
    x.max_pool2d_with_stride(k, s)
}

/// `AdaptiveAvgPool2d((oh, ow))` as torch computes it: output cell `i` averages input rows
/// `floor(i·H/oh) .. ceil((i+1)·H/oh)`; likewise for columns. candle's ops, so differentiable
/// on every device.
///
/// ```
/// use candle_core::{Device, Tensor};
/// let x = Tensor::new(&[[[[1f32, 2., 3.]]]], &Device::Cpu)?; // 1×3
/// let y = fmv_kernels::adaptive_avg_pool2d(&x, 1, 2)?;
/// assert_eq!(y.flatten_all()?.to_vec1::<f32>()?, [1.5, 2.5]);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn adaptive_avg_pool2d(x: &Tensor, oh: usize, ow: usize) -> candle_core::Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    if h == oh && w == ow {
        return Ok(x.clone());
    }
    if h % oh == 0 && w % ow == 0 {
        return x.avg_pool2d((h / oh, w / ow));
    }
    let pool_axis = |x: &Tensor, dim: usize, n_in: usize, n_out: usize| {
        let cells = (0..n_out)
            .map(|i| {
                let start = i * n_in / n_out;
                let end = ((i + 1) * n_in).div_ceil(n_out);
                x.narrow(dim, start, end - start)?.mean_keepdim(dim)
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Tensor::cat(&cells, dim)
    };
    let x = pool_axis(x, 2, h, oh)?;
    pool_axis(&x, 3, w, ow)
}

/// `MaxPool2d(k, s, p)`; see the module's documentation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MaxPool {
    pub k: usize,
    pub s: usize,
    pub p: usize,
}

/// A planes' geometry: `(n·c, h, w)` in, `(ho, wo)` out.
#[derive(Clone, Copy)]
struct Planes {
    count: usize,
    h: usize,
    w: usize,
    ho: usize,
    wo: usize,
}

impl MaxPool {
    /// The geometry for an `(N, C, H, W)` input, or the error saying why the pool cannot take
    /// it.
    fn planes(&self, shape: &Shape) -> candle_core::Result<Planes> {
        let (n, c, h, w) = shape.dims4()?;
        let &MaxPool { k, s, p } = self;
        if k == 0 || s == 0 || 2 * p > k {
            candle_core::bail!("fmv max-pool: kernel {k}, stride {s}, padding {p} (needs p ≤ k/2)")
        }
        if h + 2 * p < k || w + 2 * p < k {
            candle_core::bail!("fmv max-pool: a {h}×{w} input is smaller than the {k}×{k} window")
        }
        Ok(Planes {
            count: n * c,
            h,
            w,
            ho: (h + 2 * p - k) / s + 1,
            wo: (w + 2 * p - k) / s + 1,
        })
    }

    /// The input rows (or columns) that output row `o` reads, of `len` in all.
    fn window(&self, o: usize, len: usize) -> std::ops::Range<usize> {
        let start = (o * self.s).saturating_sub(self.p);
        let end = (o * self.s + self.k - self.p).min(len);
        start..end
    }

    /// Calls `f(o, i)` with each output `o` of one plane and the index `i` of its window's
    /// first maximum in `x` (torch's rule: a value wins if it is greater than the maximum so
    /// far, or NaN).
    fn argmax<T: Float>(&self, x: &[T], pl: Planes, mut f: impl FnMut(usize, usize)) {
        for oy in 0..pl.ho {
            let rows = self.window(oy, pl.h);
            for ox in 0..pl.wo {
                let cols = self.window(ox, pl.w);
                let mut best = rows.start * pl.w + cols.start;
                let mut max = x[best];
                for y in rows.clone() {
                    let start = y * pl.w + cols.start;
                    for (i, &v) in x[start..y * pl.w + cols.end].iter().enumerate() {
                        if is_greater_or_nan(v, max) {
                            max = v;
                            best = start + i;
                        }
                    }
                }
                f(oy * pl.wo + ox, best);
            }
        }
    }

    /// The maximum of every window, found in two passes: over each input row's stretch of
    /// every window's columns, then over each window's rows of those (a loop over whole output
    /// rows, which the compiler vectorises). Both keep the earlier value unless the later one
    /// is greater or NaN, as [`argmax`](Self::argmax) does, so the value is that of the
    /// window's first maximum in scan order, signed zeros and NaN included.
    fn forward<T: Float>(&self, x: &[T], pl: Planes) -> Vec<T> {
        let mut y = zeroed(pl.count * pl.ho * pl.wo);
        if (self.k, self.s, self.p) == (2, 2, 0) {
            y.par_chunks_mut(pl.ho * pl.wo)
                .enumerate()
                .for_each(|(c, y)| forward_2x2(&x[c * pl.h * pl.w..][..pl.h * pl.w], pl, y));
            return y;
        }
        y.par_chunks_mut(pl.ho * pl.wo).enumerate().for_each_init(
            || vec![T::zero(); pl.h * pl.wo],
            |across, (c, y)| {
                let plane = &x[c * pl.h * pl.w..][..pl.h * pl.w];
                for (row, out) in plane.chunks_exact(pl.w).zip(across.chunks_exact_mut(pl.wo)) {
                    for (ox, o) in out.iter_mut().enumerate() {
                        let cols = &row[self.window(ox, pl.w)];
                        *o = cols[1..]
                            .iter()
                            .fold(cols[0], |m, &v| later_if_greater(m, v));
                    }
                }
                for (oy, out) in y.chunks_exact_mut(pl.wo).enumerate() {
                    let rows = self.window(oy, pl.h);
                    out.copy_from_slice(&across[rows.start * pl.wo..][..pl.wo]);
                    for r in rows.start + 1..rows.end {
                        for (o, &v) in out.iter_mut().zip(&across[r * pl.wo..][..pl.wo]) {
                            *o = later_if_greater(*o, v);
                        }
                    }
                }
            },
        );
        y
    }

    /// `dx` for `dy`: each output's gradient added at its window's first maximum. Within a
    /// row of windows the gradients meeting in one input column are summed first, then added
    /// to `dx`: the grouping of the separable pool that runs on other devices, so that the
    /// two round alike (the compat patterns' parity with the original is that sensitive).
    fn backward<T: Float>(&self, x: &[T], dy: &[T], pl: Planes) -> Vec<T> {
        if (self.k, self.s, self.p) == (2, 2, 0) {
            // VGG's pool: each plane written once by its own loops, with no zeroing first.
            // SAFETY: `backward_2x2` writes every element of its plane.
            return unsafe {
                written_in_runs(pl.count * pl.h * pl.w, pl.h * pl.w, |c, dx| {
                    let plane = &x[c * pl.h * pl.w..][..pl.h * pl.w];
                    backward_2x2(plane, &dy[c * pl.ho * pl.wo..][..pl.ho * pl.wo], pl, dx);
                })
            };
        }
        let mut dx = zeroed(pl.count * pl.h * pl.w);
        if self.s >= self.k {
            // Windows that do not overlap: each input gets at most one output's gradient, so
            // the sum above is that gradient added to zero, written once.
            dx.par_chunks_mut(pl.h * pl.w)
                .enumerate()
                .for_each(|(c, dx)| {
                    let plane = &x[c * pl.h * pl.w..][..pl.h * pl.w];
                    let dy = &dy[c * pl.ho * pl.wo..][..pl.ho * pl.wo];
                    self.argmax(plane, pl, |o, i| dx[i] = T::zero() + dy[o]);
                });
            return dx;
        }
        self.backward_summed(x, dy, pl, dx)
    }

    /// [`backward`](Self::backward) for any windows, overlapping or not, into `dx` (zeros).
    fn backward_summed<T: Float>(&self, x: &[T], dy: &[T], pl: Planes, mut dx: Vec<T>) -> Vec<T> {
        dx.par_chunks_mut(pl.h * pl.w)
            .enumerate()
            .for_each(|(c, dx)| {
                let plane = &x[c * pl.h * pl.w..][..pl.h * pl.w];
                let dy = &dy[c * pl.ho * pl.wo..][..pl.ho * pl.wo];
                // Per input column: the gradient of this row of windows, and the row of the
                // maximum it goes to.
                let mut column = vec![(T::zero(), usize::MAX); pl.w];
                let flush = |column: &mut [(T, usize)], dx: &mut [T]| {
                    for (xc, (g, row)) in column.iter_mut().enumerate() {
                        if *row != usize::MAX {
                            dx[*row * pl.w + xc] += *g;
                            *g = T::zero();
                            *row = usize::MAX;
                        }
                    }
                };
                let mut row_of_windows = 0;
                self.argmax(plane, pl, |o, i| {
                    if o / pl.wo != row_of_windows {
                        flush(&mut column, dx);
                        row_of_windows = o / pl.wo;
                    }
                    let (g, row) = &mut column[i % pl.w];
                    *g += dy[o];
                    *row = i / pl.w;
                });
                flush(&mut column, dx);
            });
        dx
    }
}

/// [`MaxPool::forward`] of one plane for `MaxPool2d(2, 2, 0)`: the same two passes (each
/// row's pair, then the two rows' results) in one, so the same value bit for bit.
fn forward_2x2<T: Float>(x: &[T], pl: Planes, y: &mut [T]) {
    for (oy, out) in y.chunks_exact_mut(pl.wo).enumerate() {
        let top = 2 * oy * pl.w;
        let (upper, lower) = (&x[top..][..2 * pl.wo], &x[top + pl.w..][..2 * pl.wo]);
        for ((o, u), l) in out
            .iter_mut()
            .zip(upper.chunks_exact(2))
            .zip(lower.chunks_exact(2))
        {
            *o = later_if_greater(later_if_greater(u[0], u[1]), later_if_greater(l[0], l[1]));
        }
    }
}

/// The gradient `dx` of one plane for `MaxPool2d(2, 2, 0)`, the pool of VGG and most
/// classifiers, every element written: the window of output `(oy, ox)` is input rows `2oy,
/// 2oy + 1` and columns `2ox, 2ox + 1`, scanned in that order as [`MaxPool::argmax`] does; `0 +
/// dy` goes to the first maximum, zero to the other three and to the last row and column when
/// no window covers them (an odd side). `f32` windows go four at a time through SSE
/// ([`backward_2x2_sse`]), the rest one at a time, the same values either way.
fn backward_2x2<T: Float>(x: &[T], dy: &[T], pl: Planes, dx: &mut [MaybeUninit<T>]) {
    let zero = MaybeUninit::new(T::zero());
    let covered = 2 * pl.wo;
    for (oy, dy) in dy.chunks_exact(pl.wo).enumerate() {
        let top = 2 * oy * pl.w;
        let (upper, lower) = (&x[top..][..covered], &x[top + pl.w..][..covered]);
        let (du, dl) = dx[top..][..2 * pl.w].split_at_mut(pl.w);
        let done = backward_2x2_sse(upper, lower, dy, &mut du[..covered], &mut dl[..covered]);
        for ox in done..pl.wo {
            let (u, l) = (&upper[2 * ox..][..2], &lower[2 * ox..][..2]);
            // The scan: u0, u1, l0, l1; a later value takes over if greater or NaN.
            let (max, at) = (u[0], 0);
            let (max, at) = if is_greater_or_nan(u[1], max) {
                (u[1], 1)
            } else {
                (max, at)
            };
            let (max, at) = if is_greater_or_nan(l[0], max) {
                (l[0], 2)
            } else {
                (max, at)
            };
            let at = if is_greater_or_nan(l[1], max) { 3 } else { at };
            let g = T::zero() + dy[ox];
            let value = |i| MaybeUninit::new(if at == i { g } else { T::zero() });
            (du[2 * ox], du[2 * ox + 1]) = (value(0), value(1));
            (dl[2 * ox], dl[2 * ox + 1]) = (value(2), value(3));
        }
        du[covered..].fill(zero);
        dl[covered..].fill(zero);
    }
    dx[2 * pl.ho * pl.w..].fill(zero);
}

/// [`backward_2x2`]'s windows of one row pair four at a time, for `f32`, in SSE registers (part
/// of every x86-64 CPU): the same comparisons in the same order, each of the four positions
/// then written `0 + dy` where it is the first maximum and `+0` elsewhere. Returns how many
/// windows it wrote, from the first: none for other types and CPUs.
fn backward_2x2_sse<T: Float>(
    upper: &[T],
    lower: &[T],
    dy: &[T],
    du: &mut [MaybeUninit<T>],
    dl: &mut [MaybeUninit<T>],
) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        let (Some(upper), Some(lower), Some(dy)) = (as_f32(upper), as_f32(lower), as_f32(dy))
        else {
            return 0;
        };
        let blocks = dy.len() / 4;
        assert!(upper.len() >= 8 * blocks && lower.len() >= 8 * blocks);
        assert!(du.len() >= 8 * blocks && dl.len() >= 8 * blocks);
        let (du, dl) = (du.as_mut_ptr().cast::<f32>(), dl.as_mut_ptr().cast::<f32>());
        for b in 0..blocks {
            // SAFETY: values 8b .. 8b + 8 of the rows and of `du`, `dl`, and 4b .. 4b + 4 of
            // `dy`, are inside them (the asserts); `T` is `f32` (`as_f32`), so `du` and `dl` hold
            // `f32` slots; SSE is part of x86-64.
            unsafe {
                let split = |row: *const f32| {
                    let (a, b) = (_mm_loadu_ps(row), _mm_loadu_ps(row.add(4)));
                    let even = _mm_shuffle_ps::<0b10_00_10_00>(a, b);
                    (even, _mm_shuffle_ps::<0b11_01_11_01>(a, b))
                };
                let (u0, u1) = split(upper.as_ptr().add(8 * b));
                let (l0, l1) = split(lower.as_ptr().add(8 * b));
                // A later value takes over if greater (an ordered comparison: false with NaN) or
                // NaN.
                let takes = |v, max| _mm_or_ps(_mm_cmpgt_ps(v, max), _mm_cmpunord_ps(v, v));
                let select = |m, a, b| _mm_or_ps(_mm_and_ps(m, a), _mm_andnot_ps(m, b));
                let m1 = takes(u1, u0);
                let max = select(m1, u1, u0);
                let m2 = takes(l0, max);
                let max = select(m2, l0, max);
                let m3 = takes(l1, max);
                let g = _mm_add_ps(_mm_setzero_ps(), _mm_loadu_ps(dy.as_ptr().add(4 * b)));
                // The first maximum: l1 if m3, else l0 if m2, else u1 if m1, else u0.
                let lower_wins = _mm_or_ps(m2, m3);
                let vu0 = _mm_andnot_ps(_mm_or_ps(lower_wins, m1), g);
                let vu1 = _mm_and_ps(_mm_andnot_ps(lower_wins, m1), g);
                let vl0 = _mm_and_ps(_mm_andnot_ps(m3, m2), g);
                let vl1 = _mm_and_ps(m3, g);
                _mm_storeu_ps(du.add(8 * b), _mm_unpacklo_ps(vu0, vu1));
                _mm_storeu_ps(du.add(8 * b + 4), _mm_unpackhi_ps(vu0, vu1));
                _mm_storeu_ps(dl.add(8 * b), _mm_unpacklo_ps(vl0, vl1));
                _mm_storeu_ps(dl.add(8 * b + 4), _mm_unpackhi_ps(vl0, vl1));
            }
        }
        4 * blocks
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (upper, lower, dy, du, dl);
        0
    }
}

/// Torch's rule for a value met later in a window's scan: it takes over if it is greater than
/// the maximum so far, or NaN.
fn is_greater_or_nan<T: Float>(v: T, max: T) -> bool {
    #[allow(clippy::eq_op)] // NaN is the one value unequal to itself.
    let nan = v != v;
    v > max || nan
}

/// The maximum so far, `max`, after meeting `v` later in the scan ([`is_greater_or_nan`]).
fn later_if_greater<T: Float>(max: T, v: T) -> T {
    if is_greater_or_nan(v, max) { v } else { max }
}

impl CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        "fmv-max-pool2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let pl = self.planes(l.shape())?;
        let (n, c, _, _) = l.shape().dims4()?;
        let y = in_float_type!(s, "max-pool", T => self.forward(host_slice::<T>(s, l)?, pl));
        Ok((y, Shape::from((n, c, pl.ho, pl.wo))))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, dy: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let dx = dy
            .contiguous()?
            .apply_op2_no_bwd(&x.contiguous()?, &MaxPoolGrad(*self))?;
        Ok(Some(dx))
    }
}

/// The gradient of [`MaxPool`], a [`CustomOp2`] on `(dy, x)`.
struct MaxPoolGrad(MaxPool);

impl CustomOp2 for MaxPoolGrad {
    fn name(&self) -> &'static str {
        "fmv-max-pool2d-grad"
    }

    fn cpu_fwd(
        &self,
        dys: &CpuStorage,
        dyl: &Layout,
        xs: &CpuStorage,
        xl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let pl = self.0.planes(xl.shape())?;
        let (n, c, _, _) = xl.shape().dims4()?;
        if dyl.shape().dims() != [n, c, pl.ho, pl.wo] {
            candle_core::bail!(
                "fmv max-pool: a {:?} gradient does not match a {:?} input",
                dyl.shape(),
                xl.shape()
            )
        }
        let dx = in_float_type!(dys, "max-pool gradient", T => {
            self.0.backward(host_slice::<T>(xs, xl)?, host_slice::<T>(dys, dyl)?, pl)
        });
        Ok((dx, xl.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    //! Against candle's `max_pool2d_with_stride` on an explicitly −∞-padded input (the
    //! forward pass), and against the gradient that puts each output's gradient on the one
    //! position of its window holding the maximum, found by comparing values (the backward).

    use candle_core::{DType, Device, Tensor, Var};

    use std::mem::MaybeUninit;

    use super::{MaxPool, backward_2x2};
    use crate::test_data::{max_abs_diff, random, slice_bits};

    /// (k, s, p, h, w)
    const CASES: [(usize, usize, usize, usize, usize); 6] = [
        (3, 2, 1, 9, 8),
        (3, 2, 1, 10, 11),
        (2, 2, 0, 8, 6),
        (2, 2, 0, 7, 9),
        (3, 1, 1, 5, 6),
        (3, 3, 0, 3, 7),
    ];

    fn padded(x: &Tensor, p: usize) -> Tensor {
        if p == 0 {
            return x.clone();
        }
        let (n, c, h, w) = x.dims4().unwrap();
        let mut big = Tensor::full(f64::NEG_INFINITY, (n, c, h + 2 * p, w + 2 * p), x.device())
            .unwrap()
            .to_dtype(x.dtype())
            .unwrap();
        big = big
            .slice_assign(&[0..n, 0..c, p..p + h, p..p + w], x)
            .unwrap();
        big
    }

    #[test]
    fn forward_matches_candle_and_the_gradient_finds_each_maximum() {
        for (i, &(k, s, p, h, w)) in CASES.iter().enumerate() {
            let x = random(&[2, 3, h, w], 7 * i as u64);
            let pool = MaxPool { k, s, p };
            let ours = x.apply_op1_no_bwd(&pool).unwrap();
            let theirs = padded(&x, p).max_pool2d_with_stride(k, s).unwrap();
            assert_eq!(ours.dims(), theirs.dims(), "case {i}");
            assert_eq!(max_abs_diff(&ours, &theirs), 0.0, "case {i}");

            let var = Var::from_tensor(&x).unwrap();
            let y = var.as_tensor().apply_op1(pool).unwrap();
            let dy = random(y.dims(), 7 * i as u64 + 1);
            let dx = (&y * &dy).unwrap().sum_all().unwrap().backward().unwrap();
            let dx = dx.get(var.as_tensor()).unwrap();
            // Expected: for each output, its gradient added where the input equals the output
            // inside the window (random inputs have no ties).
            let (xv, yv, dyv) = (
                x.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
                y.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
                dy.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
            );
            let (ho, wo) = (y.dim(2).unwrap(), y.dim(3).unwrap());
            let mut expected = vec![0.0; xv.len()];
            for plane in 0..6 {
                for oy in 0..ho {
                    for ox in 0..wo {
                        let o = plane * ho * wo + oy * wo + ox;
                        let mut hits = 0;
                        for ky in 0..k {
                            for kx in 0..k {
                                let (iy, ix) = (oy * s + ky, ox * s + kx);
                                if iy < p || ix < p || iy - p >= h || ix - p >= w {
                                    continue;
                                }
                                let at = plane * h * w + (iy - p) * w + (ix - p);
                                if xv[at] == yv[o] {
                                    expected[at] += dyv[o];
                                    hits += 1;
                                }
                            }
                        }
                        assert_eq!(hits, 1, "case {i}: output {o} has one maximum");
                    }
                }
            }
            let expected = Tensor::from_vec(expected, x.dims(), &Device::Cpu).unwrap();
            // Sums of up to nine terms, added in another order.
            assert!(max_abs_diff(dx, &expected) < 1e-15, "case {i}");
        }
    }

    /// On the networks' pools (ResNet's 3/2/1, VGG's 2/2/0) the gradient equals, bit for bit,
    /// that of the separable pool built from candle's ops, which other devices run: the
    /// compat patterns' parity with the original depends on rounding this closely.
    #[test]
    fn the_networks_pools_round_like_the_separable_pool() {
        for (i, (k, s, p, h, w)) in [(3, 2, 1, 17, 17), (3, 2, 1, 12, 9), (2, 2, 0, 8, 10)]
            .into_iter()
            .enumerate()
        {
            // After a ReLU, as in both networks: many zeros, whose gradient the ReLU removes.
            let x = random(&[2, 4, h, w], 11 * i as u64).relu().unwrap();
            let var = Var::from_tensor(&x).unwrap();
            let ours = var.as_tensor().apply_op1(MaxPool { k, s, p }).unwrap();
            let theirs =
                crate::input_grad::max_pool2d_differentiable(var.as_tensor(), k, s, p).unwrap();
            assert_eq!(max_abs_diff(&ours, &theirs), 0.0, "case {i}");
            let dy = random(ours.dims(), 11 * i as u64 + 1);
            let dx = |y: &Tensor| {
                let grads = (y * &dy).unwrap().sum_all().unwrap().backward().unwrap();
                let mask = x.gt(0.0).unwrap().to_dtype(x.dtype()).unwrap();
                (grads.get(var.as_tensor()).unwrap() * mask).unwrap()
            };
            assert_eq!(max_abs_diff(&dx(&ours), &dx(&theirs)), 0.0, "case {i}");
        }
    }

    /// The two-pass forward against the window-by-window scan that the backward pass uses, on
    /// inputs full of ties, signed zeros and NaN: the same value, bit for bit (any NaN for NaN).
    #[test]
    fn the_forward_pass_gives_the_value_of_the_scans_first_maximum() {
        let with_nan = [0.0, -0.0, 1.0, -1.0, 2.0, f32::NAN];
        let zeros_tie = [0.0, -0.0, -1.0, -0.0];
        for (values, (i, &(k, s, p, h, w))) in [&with_nan[..], &zeros_tie[..]]
            .into_iter()
            .flat_map(|v| std::iter::repeat(v).zip(CASES.iter().enumerate()))
        {
            let pool = MaxPool { k, s, p };
            let x: Vec<f32> = (0..3 * h * w)
                .map(|j| values[(j * 7 + i * 3 + j / 5) % values.len()])
                .collect();
            let pl = pool.planes(&(3, 1, h, w).into()).unwrap();
            let y = pool.forward(&x, pl);
            for (c, y) in y.chunks(pl.ho * pl.wo).enumerate() {
                let plane = &x[c * h * w..][..h * w];
                pool.argmax(plane, pl, |o, at| {
                    let (got, want) = (y[o], plane[at]);
                    assert!(
                        got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                        "case {i}, plane {c}, output {o}: {got} against the scan's {want}"
                    );
                });
            }
        }
    }

    /// Where windows do not overlap, the backward pass writes each gradient once: the same
    /// values, bit for bit, as summing them per column after the general scan, on inputs full
    /// of ties, signed zeros and NaN, with −0 and NaN among the gradients.
    #[test]
    fn pools_without_overlap_write_the_summed_gradient() {
        let values = [0.0, -0.0, 1.0, -1.0, 2.0, f32::NAN, 2.0];
        let mut checked = 0;
        for (i, &(k, s, p, h, w)) in CASES.iter().enumerate().filter(|(_, c)| c.1 >= c.0) {
            let pool = MaxPool { k, s, p };
            let x: Vec<f32> = (0..3 * h * w)
                .map(|j| values[(j * 5 + i + j / 3) % values.len()])
                .collect();
            let pl = pool.planes(&(3, 1, h, w).into()).unwrap();
            let dy: Vec<f32> = (0..3 * pl.ho * pl.wo)
                .map(|j| [0.5, -0.0, f32::NAN, -2.0, 0.0][j % 5])
                .collect();
            let once = pool.backward(&x, &dy, pl);
            let summed = pool.backward_summed(&x, &dy, pl, vec![0.0; x.len()]);
            assert_eq!(slice_bits(&once), slice_bits(&summed), "case {i}");
            checked += 1;
        }
        assert_eq!(checked, 3);
    }

    /// Every 2×2 window of values from ties, signed zeros and NaN (all 6⁴ of them, side by
    /// side): the forward pass gives the scan's first maximum and the backward pass the summed
    /// gradient, bit for bit (the case where the order of the comparisons shows).
    #[test]
    fn every_2x2_window_pools_like_the_scan() {
        let values = [0.0, -0.0, 1.0, -1.0, -0.0, f32::NAN];
        let windows = values.len().pow(4);
        let (h, w) = (2, 2 * windows);
        let mut x = vec![0.0; h * w];
        for i in 0..windows {
            let digit = |d: u32| values[i / values.len().pow(d) % values.len()];
            (x[2 * i], x[2 * i + 1], x[w + 2 * i], x[w + 2 * i + 1]) =
                (digit(0), digit(1), digit(2), digit(3));
        }
        let pool = MaxPool { k: 2, s: 2, p: 0 };
        let pl = pool.planes(&(1, 1, h, w).into()).unwrap();
        let y = pool.forward(&x, pl);
        pool.argmax(&x, pl, |o, at| {
            let (got, want) = (y[o], x[at]);
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "window {o}: {got} against the scan's {want}"
            );
        });
        let dy: Vec<f32> = (0..windows).map(|o| [0.5, -0.0, -2.0][o % 3]).collect();
        let once = pool.backward(&x, &dy, pl);
        let summed = pool.backward_summed(&x, &dy, pl, vec![0.0; x.len()]);
        assert_eq!(slice_bits(&once), slice_bits(&summed));
    }

    /// The 2×2 pool's backward pass, which writes every element itself, against the general
    /// scan into zeros, bit for bit: planes of odd and even sides (a last row and column that no
    /// window covers), rows that leave one to three windows after the blocks of four, several
    /// planes, ties, signed zeros and NaN among the inputs, NaN and −0 among the gradients, in
    /// `f32` (the SSE path) and `f64`, through the op and directly into memory that holds NaN.
    #[test]
    fn the_2x2_backward_writes_every_element_like_the_scan() {
        fn check<T: crate::float::Float>(values: &[T], gradients: &[T]) {
            let pool = MaxPool { k: 2, s: 2, p: 0 };
            let mut seed = 3u64;
            let mut pick = |n: usize| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (seed >> 33) as usize % n
            };
            for (h, w) in [
                (2, 2),
                (3, 3),
                (2, 9),
                (5, 8),
                (4, 11),
                (7, 17),
                (6, 16),
                (3, 30),
            ] {
                let count = 3;
                let x: Vec<T> = (0..count * h * w)
                    .map(|_| values[pick(values.len())])
                    .collect();
                let pl = pool.planes(&(1, count, h, w).into()).unwrap();
                let dy: Vec<T> = (0..count * pl.ho * pl.wo)
                    .map(|_| gradients[pick(gradients.len())])
                    .collect();
                let once = pool.backward(&x, &dy, pl);
                let summed = pool.backward_summed(&x, &dy, pl, vec![T::zero(); x.len()]);
                assert_eq!(slice_bits(&once), slice_bits(&summed), "{h}×{w}");
                // The planes written into memory that holds NaN: no element left unwritten.
                let mut direct = vec![MaybeUninit::new(T::from_f64(f64::NAN)); x.len()];
                let (plane, out) = (h * w, pl.ho * pl.wo);
                for (c, dx) in direct.chunks_exact_mut(plane).enumerate() {
                    backward_2x2(&x[c * plane..][..plane], &dy[c * out..][..out], pl, dx);
                }
                // SAFETY: every element was initialised (to NaN) when the buffer was made.
                let direct: Vec<T> = direct
                    .into_iter()
                    .map(|v| unsafe { v.assume_init() })
                    .collect();
                assert_eq!(slice_bits(&direct), slice_bits(&summed), "{h}×{w}, direct");
            }
        }
        check::<f32>(
            &[0.0, -0.0, 1.0, -1.0, 2.0, f32::NAN, 1.0],
            &[0.5, -0.0, -2.0, f32::NAN],
        );
        check::<f64>(
            &[0.0, -0.0, 1.0, -1.0, 2.0, f64::NAN, 1.0],
            &[0.5, -0.0, -2.0, f64::NAN],
        );
    }

    #[test]
    fn ties_send_the_gradient_to_the_first_maximum_like_torch() {
        // One 2×2 window of equal values: torch's CPU kernel gives its gradient to the
        // top-left one.
        let var = Var::from_tensor(&Tensor::ones((1, 1, 2, 2), DType::F64, &Device::Cpu).unwrap())
            .unwrap();
        let y = var
            .as_tensor()
            .apply_op1(MaxPool { k: 2, s: 2, p: 0 })
            .unwrap();
        let grads = y.sum_all().unwrap().backward().unwrap();
        let dx = grads.get(var.as_tensor()).unwrap();
        let dx = dx.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        assert_eq!(dx, [1.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn bad_geometry_is_an_error() {
        let x = random(&[1, 1, 4, 4], 1);
        let err = x
            .apply_op1_no_bwd(&MaxPool { k: 3, s: 2, p: 2 })
            .unwrap_err();
        assert!(err.to_string().contains("p ≤ k/2"), "{err}");
        let err = x
            .apply_op1_no_bwd(&MaxPool { k: 7, s: 1, p: 0 })
            .unwrap_err();
        assert!(err.to_string().contains("smaller than"), "{err}");
    }
}
