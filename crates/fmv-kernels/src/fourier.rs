//! The real part of an unnormalised inverse 2-D DFT over a tensor's last two dimensions, with
//! its gradient: how a robust pattern's image is made from its Fourier spectrum.
//!
//! On the CPU (`f32`, `f64`) an FFT per row and per column (`rustfft`), `O(hw·log(hw))` per
//! plane; elsewhere the sum as four pairs of matrix products with the DFT's cosine and sine
//! matrices, `O(hw·(h + w))`, which at 224 px cost a robust step of ResNet50 7 % of its time
//! on the CPU (docs/PERFORMANCE.md).
//!
//! With `E_n[j, k] = e^{2πi·jk/n}` (symmetric), the op is `y = Re(E_h (R + iI) E_w)`. For a
//! real gradient `G` of `y`, `⟨G, y⟩ = Re Σ (R + iI)·A` with `A = E_h G E_w`, the same
//! transform of `G`: so `∂/∂R = Re(A)` and `∂/∂I = −Im(A)`.

use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Device, Layout, Shape, Tensor};
use rayon::prelude::*;
use rustfft::num_complex::Complex;
use rustfft::{Fft, FftNum, FftPlanner};

use crate::buffer::{host_slice, in_float_type};
use crate::float::{Float, serves};

/// `y[.., u, v] = Re Σ_{k, l} (re + i·im)[.., k, l] · e^{2πi(uk/h + vl/w)}` over the last two
/// dimensions (no `1/(hw)`), differentiable with respect to both parts.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use fmv_kernels::InverseDft2;
/// let idft = InverseDft2::new(2, 2, &Device::Cpu, candle_core::DType::F32)?;
/// // A constant spectrum is a single bright pixel: Σ_{k,l} e^{2πi(uk + vl)/2} = 4 at (0, 0).
/// let re = Tensor::ones((1, 2, 2), candle_core::DType::F32, &Device::Cpu)?;
/// let im = re.zeros_like()?;
/// let y = idft.real_part(&re, &im)?;
/// assert_eq!(y.flatten_all()?.to_vec1::<f32>()?, [4.0, 0.0, 0.0, 0.0]);
/// # Ok::<(), candle_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct InverseDft2 {
    h: usize,
    w: usize,
    /// The DFT's matrices where the FFT does not serve (another device or element type).
    matrices: Option<Matrices>,
}

/// `cos` and `sin` of `2π·jk/n` for the rows (`h`) and the columns (`w`).
#[derive(Debug, Clone)]
struct Matrices {
    ch: Tensor,
    sh: Tensor,
    cw: Tensor,
    sw: Tensor,
}

impl InverseDft2 {
    /// The transform of `h × w` planes of `dtype` on `device`: by FFT where fmv's CPU kernels
    /// serve (the CPU, `f32` or `f64`), by matrix products elsewhere.
    pub fn new(h: usize, w: usize, device: &Device, dtype: DType) -> candle_core::Result<Self> {
        if device.is_cpu() && matches!(dtype, DType::F32 | DType::F64) {
            return Ok(InverseDft2 {
                h,
                w,
                matrices: None,
            });
        }
        Self::by_matrices(h, w, device, dtype)
    }

    /// The transform by matrix products on any device, as [`new`](Self::new) makes it where
    /// the FFT does not serve (the tests compare the two on the CPU).
    pub fn by_matrices(
        h: usize,
        w: usize,
        device: &Device,
        dtype: DType,
    ) -> candle_core::Result<Self> {
        let trig = |n: usize, f: fn(f64) -> f64| -> candle_core::Result<Tensor> {
            let v: Vec<f64> = (0..n * n)
                .map(|i| f(std::f64::consts::TAU * ((i / n) * (i % n) % n) as f64 / n as f64))
                .collect();
            Tensor::from_vec(v, (n, n), device)?.to_dtype(dtype)
        };
        Ok(InverseDft2 {
            h,
            w,
            matrices: Some(Matrices {
                ch: trig(h, f64::cos)?,
                sh: trig(h, f64::sin)?,
                cw: trig(w, f64::cos)?,
                sw: trig(w, f64::sin)?,
            }),
        })
    }

    /// The real part of the inverse DFT of `re + i·im`, both of shape `(…, h, w)`.
    pub fn real_part(&self, re: &Tensor, im: &Tensor) -> candle_core::Result<Tensor> {
        check_parts(re.shape(), im.shape(), (self.h, self.w))?;
        match &self.matrices {
            None if serves(re) && re.dtype() == im.dtype() => {
                let op = RealIdft2 {
                    h: self.h,
                    w: self.w,
                };
                re.contiguous()?.apply_op2(&im.contiguous()?, op)
            }
            None => candle_core::bail!(
                "fmv inverse DFT: made for the CPU's f32 or f64, given {:?} {:?} on {:?}",
                re.dtype(),
                im.dtype(),
                re.device()
            ),
            // Re(E_h Z E_w) = Ch R Cw − Sh R Sw − Sh I Cw − Ch I Sw.
            Some(m) => (m.ch.broadcast_matmul(re)?.broadcast_matmul(&m.cw)?
                - m.sh.broadcast_matmul(re)?.broadcast_matmul(&m.sw)?)?
            .sub(&m.sh.broadcast_matmul(im)?.broadcast_matmul(&m.cw)?)?
            .sub(&m.ch.broadcast_matmul(im)?.broadcast_matmul(&m.sw)?),
        }
    }
}

/// The inverse FFTs of one plane size, for one element type.
struct Plans<T: FftNum> {
    rows: Arc<dyn Fft<T>>,
    columns: Arc<dyn Fft<T>>,
}

impl<T: FftNum> Plans<T> {
    fn new(h: usize, w: usize) -> Self {
        let mut planner = FftPlanner::new();
        Plans {
            rows: planner.plan_fft_inverse(w),
            columns: planner.plan_fft_inverse(h),
        }
    }

    /// `E_h (re + i·im) E_w` of one `h × w` plane (`im` absent: zero), written into `out_re`
    /// and, when given, `out_im` negated; `z` and `t` are `h·w` values of scratch.
    #[allow(clippy::too_many_arguments)]
    fn plane(
        &self,
        (h, w): (usize, usize),
        re: &[T],
        im: Option<&[T]>,
        z: &mut [Complex<T>],
        t: &mut [Complex<T>],
        out_re: &mut [T],
        mut out_im_negated: Option<&mut [T]>,
    ) {
        for (k, zk) in z.iter_mut().enumerate() {
            *zk = Complex::new(re[k], im.map_or(T::zero(), |im| im[k]));
        }
        // Every row (a buffer of whole rows is transformed row by row), then every column of
        // the transposed plane.
        self.rows.process(z);
        for (k, row) in z.chunks_exact(w).enumerate() {
            for (l, &v) in row.iter().enumerate() {
                t[l * h + k] = v;
            }
        }
        self.columns.process(t);
        for (l, column) in t.chunks_exact(h).enumerate() {
            for (k, v) in column.iter().enumerate() {
                out_re[k * w + l] = v.re;
                if let Some(out_im) = out_im_negated.as_deref_mut() {
                    out_im[k * w + l] = -v.im;
                }
            }
        }
    }
}

/// Fails unless `shape` is `(…, h, w)`.
fn check_planes(shape: &Shape, (h, w): (usize, usize)) -> candle_core::Result<()> {
    let dims = shape.dims();
    if dims.len() < 2 || dims[dims.len() - 2..] != [h, w] {
        candle_core::bail!("fmv inverse DFT of {h}×{w} planes: given {shape:?}")
    }
    Ok(())
}

/// Fails unless both parts are `(…, h, w)` of one shape.
fn check_parts(re: &Shape, im: &Shape, plane: (usize, usize)) -> candle_core::Result<()> {
    check_planes(re, plane)?;
    if re != im {
        candle_core::bail!("fmv inverse DFT: parts of shapes {re:?} and {im:?}")
    }
    Ok(())
}

/// The forward pass, a [`CustomOp2`] on `(re, im)`.
#[derive(Debug, Clone, Copy)]
struct RealIdft2 {
    h: usize,
    w: usize,
}

impl RealIdft2 {
    fn forward<T: Float + FftNum>(&self, re: &[T], im: &[T]) -> Vec<T> {
        let (h, w) = (self.h, self.w);
        let plans = Plans::<T>::new(h, w);
        let mut y = vec![T::zero(); re.len()];
        y.par_chunks_mut(h * w).enumerate().for_each_init(
            || scratch::<T>(h * w),
            |(z, t), (p, out)| {
                let at = p * h * w;
                let (re, im) = (&re[at..][..h * w], &im[at..][..h * w]);
                plans.plane((h, w), re, Some(im), z, t, out, None);
            },
        );
        y
    }

    /// `(∂/∂re, ∂/∂im)` for the gradient `g`, one after the other.
    fn backward<T: Float + FftNum>(&self, g: &[T]) -> Vec<T> {
        let (h, w) = (self.h, self.w);
        let plans = Plans::<T>::new(h, w);
        let mut out = vec![T::zero(); 2 * g.len()];
        let (d_re, d_im) = out.split_at_mut(g.len());
        d_re.par_chunks_mut(h * w)
            .zip(d_im.par_chunks_mut(h * w))
            .enumerate()
            .for_each_init(
                || scratch::<T>(h * w),
                |(z, t), (p, (d_re, d_im))| {
                    let g = &g[p * h * w..][..h * w];
                    plans.plane((h, w), g, None, z, t, d_re, Some(d_im));
                },
            );
        out
    }
}

/// Two planes of complex scratch.
fn scratch<T: FftNum>(len: usize) -> (Vec<Complex<T>>, Vec<Complex<T>>) {
    let zero = Complex::new(T::zero(), T::zero());
    (vec![zero; len], vec![zero; len])
}

impl CustomOp2 for RealIdft2 {
    fn name(&self) -> &'static str {
        "fmv-real-idft2"
    }

    fn cpu_fwd(
        &self,
        res: &CpuStorage,
        rel: &Layout,
        ims: &CpuStorage,
        iml: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        check_parts(rel.shape(), iml.shape(), (self.h, self.w))?;
        let y = in_float_type!(res, "inverse DFT", T => {
            self.forward(host_slice::<T>(res, rel)?, host_slice::<T>(ims, iml)?)
        });
        Ok((y, rel.shape().clone()))
    }

    fn bwd(
        &self,
        _re: &Tensor,
        _im: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let both = dy.contiguous()?.apply_op1_no_bwd(&RealIdft2Grad(*self))?;
        Ok((Some(both.get(0)?), Some(both.get(1)?)))
    }
}

/// The gradient of [`RealIdft2`], a [`CustomOp1`] on `dy`: `∂/∂re` and `∂/∂im` stacked.
struct RealIdft2Grad(RealIdft2);

impl CustomOp1 for RealIdft2Grad {
    fn name(&self) -> &'static str {
        "fmv-real-idft2-grad"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        check_planes(l.shape(), (self.0.h, self.0.w))?;
        let both = in_float_type!(s, "inverse DFT gradient", T => {
            self.0.backward(host_slice::<T>(s, l)?)
        });
        let mut dims = vec![2];
        dims.extend_from_slice(l.shape().dims());
        Ok((both, Shape::from(dims)))
    }
}

#[cfg(test)]
mod tests {
    //! Against the defining sum, computed directly in f64 (forward), and the gradient against
    //! the adjoint's definition `⟨G, y(R, I)⟩` differentiated term by term; the matrix
    //! products (other devices' path) against the same sum.

    use candle_core::{DType, Device, Tensor, Var};

    use super::InverseDft2;
    use crate::test_data::{max_abs_diff, random};

    /// `Re Σ_{k,l} (re + i·im)[k, l] e^{2πi(uk/h + vl/w)}` for every plane, term by term.
    fn direct(re: &[f64], im: &[f64], h: usize, w: usize) -> Vec<f64> {
        let mut y = vec![0.0; re.len()];
        for p in 0..re.len() / (h * w) {
            for u in 0..h {
                for v in 0..w {
                    let mut acc = 0.0;
                    for k in 0..h {
                        for l in 0..w {
                            let phase = std::f64::consts::TAU
                                * ((u * k) as f64 / h as f64 + (v * l) as f64 / w as f64);
                            let i = p * h * w + k * w + l;
                            acc += re[i] * phase.cos() - im[i] * phase.sin();
                        }
                    }
                    y[p * h * w + u * w + v] = acc;
                }
            }
        }
        y
    }

    /// Plane sizes: even, odd, prime, one row, and a mixed radix (7 · 2).
    const SIZES: [(usize, usize); 5] = [(4, 4), (5, 3), (7, 11), (1, 6), (14, 6)];

    #[test]
    fn both_paths_compute_the_defining_sum() {
        for (case, &(h, w)) in SIZES.iter().enumerate() {
            let shape = [2, 3, h, w];
            let (re, im) = (
                random(&shape, case as u64),
                random(&shape, 100 + case as u64),
            );
            let want = direct(
                &re.flatten_all().unwrap().to_vec1().unwrap(),
                &im.flatten_all().unwrap().to_vec1().unwrap(),
                h,
                w,
            );
            let want = Tensor::from_vec(want, &shape, &Device::Cpu).unwrap();
            // f32 rounds, but computes the same sum.
            for (dtype, tolerance) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
                let fft = InverseDft2::new(h, w, &Device::Cpu, dtype).unwrap();
                assert!(fft.matrices.is_none());
                let by_matrices = InverseDft2::by_matrices(h, w, &Device::Cpu, dtype).unwrap();
                for idft in [fft, by_matrices] {
                    let got = idft
                        .real_part(&re.to_dtype(dtype).unwrap(), &im.to_dtype(dtype).unwrap())
                        .unwrap();
                    let err = max_abs_diff(&got.to_dtype(DType::F64).unwrap(), &want);
                    assert!(err < tolerance, "{h}×{w} in {dtype:?}: {err:e}");
                }
            }
        }
    }

    /// `∂⟨G, y⟩/∂re[k, l] = Σ G[u, v] cos(θ)` and `∂/∂im[k, l] = −Σ G[u, v] sin(θ)`,
    /// `θ = 2π(uk/h + vl/w)`: the sum's derivative term by term.
    #[test]
    fn gradients_are_the_sums_derivatives() {
        for (case, &(h, w)) in SIZES.iter().enumerate() {
            let shape = [3, h, w];
            let re = Var::from_tensor(&random(&shape, 7 + case as u64)).unwrap();
            let im = Var::from_tensor(&random(&shape, 70 + case as u64)).unwrap();
            let g = random(&shape, 700 + case as u64);
            let gv: Vec<f64> = g.flatten_all().unwrap().to_vec1().unwrap();
            let (mut want_re, mut want_im) = (vec![0.0; gv.len()], vec![0.0; gv.len()]);
            for p in 0..3 {
                for k in 0..h {
                    for l in 0..w {
                        let i = p * h * w + k * w + l;
                        for u in 0..h {
                            for v in 0..w {
                                let phase = std::f64::consts::TAU
                                    * ((u * k) as f64 / h as f64 + (v * l) as f64 / w as f64);
                                want_re[i] += gv[p * h * w + u * w + v] * phase.cos();
                                want_im[i] -= gv[p * h * w + u * w + v] * phase.sin();
                            }
                        }
                    }
                }
            }
            let idft = InverseDft2::new(h, w, &Device::Cpu, DType::F64).unwrap();
            let y = idft.real_part(re.as_tensor(), im.as_tensor()).unwrap();
            let grads = (y * &g).unwrap().sum_all().unwrap().backward().unwrap();
            for (var, want) in [(&re, want_re), (&im, want_im)] {
                let want = Tensor::from_vec(want, &shape, &Device::Cpu).unwrap();
                let err = max_abs_diff(grads.get(var.as_tensor()).unwrap(), &want);
                assert!(err < 1e-12, "{h}×{w}: {err:e}");
            }
        }
    }

    #[test]
    fn mismatched_parts_are_an_error() {
        let idft = InverseDft2::new(4, 4, &Device::Cpu, DType::F32).unwrap();
        let re = Tensor::zeros((3, 4, 4), DType::F32, &Device::Cpu).unwrap();
        for im in [
            Tensor::zeros((2, 4, 4), DType::F32, &Device::Cpu).unwrap(),
            Tensor::zeros((3, 4, 5), DType::F32, &Device::Cpu).unwrap(),
        ] {
            assert!(idft.real_part(&re, &im).is_err());
        }
        let wrong_size = Tensor::zeros((3, 5, 4), DType::F32, &Device::Cpu).unwrap();
        assert!(idft.real_part(&wrong_size, &wrong_size).is_err());
    }
}
