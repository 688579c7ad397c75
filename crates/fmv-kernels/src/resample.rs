//! Bilinear resampling by fixed taps, with its gradient: how a robust pattern's image is warped
//! every step.
//!
//! Each output position is the weighted sum of four input positions (a tap outside the input
//! reads a constant). On the CPU (`f32`, `f64`) one op, forward and backward; elsewhere
//! candle's ops (a column of the constant appended, four `index_select`s, products and sums),
//! whose graph took about 3 % of the samples of a robust step of ResNet50 on the CPU. Both add
//! the same products in the same order, so they agree bit for bit on the CPU (a test checks it).

use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::buffer::{host_slice, in_float_type};
use crate::float::{Float, serves};

/// Taps per output position.
const TAPS: usize = 4;

/// The order in which a backward pass of candle's ops adds the taps' gradients (the last
/// `index_select` first), kept so that the two paths round alike.
const GRADIENT_ORDER: [usize; TAPS] = [3, 2, 1, 0];

/// Four taps per output position of a resampling from `len_in` input positions: output `o` is
/// `Σ_k weight[k][o] · x[index[k][o]]`, summed in the order `k = 0, 1, 2, 3`, where an index of
/// `len_in` reads `fill`.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use fmv_kernels::BilinearTaps;
/// // Two outputs from a plane of two: the mean of both, and half the second plus half outside.
/// let taps = BilinearTaps::new(
///     2,
///     [vec![0, 1], vec![1, 2], vec![2, 2], vec![2, 2]],
///     [vec![0.5, 0.5], vec![0.5, 0.5], vec![0.0, 0.0], vec![0.0, 0.0]],
///     0.5,
/// )?;
/// let x = Tensor::new(&[[1f32, 3.]], &Device::Cpu)?;
/// assert_eq!(taps.resample(&x)?.to_vec2::<f32>()?, [[2.0, 1.75]]);
/// # Ok::<(), candle_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct BilinearTaps(Arc<Taps>);

#[derive(Debug)]
struct Taps {
    len_in: usize,
    index: [Vec<u32>; TAPS],
    weight: [Vec<f32>; TAPS],
    fill: f32,
}

impl BilinearTaps {
    /// The taps, checked: at least one input, four index and weight vectors of one length (the
    /// outputs), every index at most `len_in`.
    pub fn new(
        len_in: usize,
        index: [Vec<u32>; TAPS],
        weight: [Vec<f32>; TAPS],
        fill: f32,
    ) -> candle_core::Result<Self> {
        let len_out = index[0].len();
        if len_in == 0 {
            candle_core::bail!("fmv resampling: no input positions")
        }
        if index.iter().any(|i| i.len() != len_out) || weight.iter().any(|w| w.len() != len_out) {
            candle_core::bail!("fmv resampling: taps of different lengths")
        }
        if let Some(&i) = index.iter().flatten().find(|&&i| i as usize > len_in) {
            candle_core::bail!("fmv resampling: tap index {i} past {len_in} inputs")
        }
        Ok(BilinearTaps(Arc::new(Taps {
            len_in,
            index,
            weight,
            fill,
        })))
    }

    /// Output positions per plane.
    pub fn len_out(&self) -> usize {
        self.0.index[0].len()
    }

    /// `(planes, len_in)` → `(planes, len_out)`, differentiable with respect to `x`.
    pub fn resample(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (_, len_in) = x.dims2()?;
        if len_in != self.0.len_in {
            candle_core::bail!(
                "fmv resampling from {} inputs: given planes of {len_in}",
                self.0.len_in
            )
        }
        if serves(x) {
            return x.contiguous()?.apply_op1(Resample(self.0.clone()));
        }
        self.by_candle_ops(x)
    }

    /// [`resample`](Self::resample) as candle's ops, on any device.
    fn by_candle_ops(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (planes, _) = x.dims2()?;
        let device = x.device();
        let fill = Tensor::full(self.0.fill, (planes, 1), device)?.to_dtype(x.dtype())?;
        let padded = Tensor::cat(&[x, &fill], 1)?;
        let mut out: Option<Tensor> = None;
        for k in 0..TAPS {
            let index = Tensor::new(self.0.index[k].as_slice(), device)?;
            let weight = Tensor::new(self.0.weight[k].as_slice(), device)?
                .unsqueeze(0)?
                .to_dtype(x.dtype())?;
            let term = padded.index_select(&index, 1)?.broadcast_mul(&weight)?;
            out = Some(match out {
                None => term,
                Some(o) => (o + term)?,
            });
        }
        Ok(out.expect("four taps"))
    }
}

impl Taps {
    fn forward<T: Float>(&self, x: &[T]) -> Vec<T> {
        let (len_in, len_out) = (self.len_in, self.index[0].len());
        let fill = T::from_f64(self.fill as f64);
        let mut y = vec![T::zero(); x.len() / len_in * len_out];
        y.par_chunks_mut(len_out.max(1))
            .zip(x.par_chunks(len_in))
            .for_each(|(y, x)| {
                let tap = |k: usize, o: usize| {
                    let i = self.index[k][o] as usize;
                    let v = if i < len_in { x[i] } else { fill };
                    v * T::from_f64(self.weight[k][o] as f64)
                };
                for (o, yo) in y.iter_mut().enumerate() {
                    *yo = ((tap(0, o) + tap(1, o)) + tap(2, o)) + tap(3, o);
                }
            });
        y
    }

    fn backward<T: Float>(&self, dy: &[T]) -> Vec<T> {
        let (len_in, len_out) = (self.len_in, self.index[0].len());
        let mut dx = vec![T::zero(); dy.len() / len_out.max(1) * len_in];
        dx.par_chunks_mut(len_in)
            .zip(dy.par_chunks(len_out.max(1)))
            .for_each(|(dx, dy)| {
                for k in GRADIENT_ORDER {
                    for (o, &g) in dy.iter().enumerate() {
                        let i = self.index[k][o] as usize;
                        if i < len_in {
                            dx[i] += g * T::from_f64(self.weight[k][o] as f64);
                        }
                    }
                }
            });
        dx
    }
}

/// The forward pass, a [`CustomOp1`] on `(planes, len_in)`.
struct Resample(Arc<Taps>);

impl CustomOp1 for Resample {
    fn name(&self) -> &'static str {
        "fmv-resample"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (planes, _) = l.shape().dims2()?;
        let y = in_float_type!(s, "resampling", T => self.0.forward(host_slice::<T>(s, l)?));
        Ok((y, Shape::from((planes, self.0.index[0].len()))))
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, dy: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(
            dy.contiguous()?
                .apply_op1_no_bwd(&ResampleGrad(self.0.clone()))?,
        ))
    }
}

/// The gradient of [`Resample`], a [`CustomOp1`] on `dy`.
struct ResampleGrad(Arc<Taps>);

impl CustomOp1 for ResampleGrad {
    fn name(&self) -> &'static str {
        "fmv-resample-grad"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (planes, len_out) = l.shape().dims2()?;
        if len_out != self.0.index[0].len() {
            candle_core::bail!("fmv resampling: a gradient of {len_out} outputs per plane")
        }
        let dx = in_float_type!(s, "resampling gradient", T => {
            self.0.backward(host_slice::<T>(s, l)?)
        });
        Ok((dx, Shape::from((planes, self.0.len_in))))
    }
}

#[cfg(test)]
mod tests {
    //! The op against candle's ops (the path of other devices), forward and backward, bit for
    //! bit, on taps that repeat inputs and fall outside.

    use candle_core::{DType, Device, Tensor, Var};

    use super::BilinearTaps;
    use crate::test_data::{bits, random};

    /// Taps over `len_in` inputs for `len_out` outputs, from a seeded generator: indices
    /// repeat (several outputs read one input) and one in five is outside.
    fn taps(len_in: usize, len_out: usize, seed: u64) -> BilinearTaps {
        let r = random(&[8, len_out], seed)
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let index = std::array::from_fn(|k| {
            (0..len_out)
                .map(|o| {
                    let u = r[k * len_out + o] + 0.5;
                    if u < 0.2 {
                        len_in as u32
                    } else {
                        ((u * 7919.0) as usize % len_in) as u32
                    }
                })
                .collect()
        });
        let weight = std::array::from_fn(|k| {
            (0..len_out)
                .map(|o| (r[(4 + k) * len_out + o] + 0.5) as f32)
                .collect()
        });
        BilinearTaps::new(len_in, index, weight, 0.5).unwrap()
    }

    #[test]
    fn the_op_and_candles_ops_agree_bit_for_bit() {
        for (case, (planes, len_in, len_out)) in [(3, 50, 50), (2, 17, 40), (1, 40, 9)]
            .into_iter()
            .enumerate()
        {
            let taps = taps(len_in, len_out, case as u64);
            for dtype in [DType::F32, DType::F64] {
                let x = random(&[planes, len_in], 10 + case as u64)
                    .to_dtype(dtype)
                    .unwrap();
                let g = random(&[planes, len_out], 20 + case as u64)
                    .to_dtype(dtype)
                    .unwrap();
                let run = |by_ops: bool| {
                    let v = Var::from_tensor(&x).unwrap();
                    let y = if by_ops {
                        taps.by_candle_ops(v.as_tensor()).unwrap()
                    } else {
                        taps.resample(v.as_tensor()).unwrap()
                    };
                    let grads = (&y * &g).unwrap().sum_all().unwrap().backward().unwrap();
                    let dx = grads.get(v.as_tensor()).unwrap().clone();
                    (bits(&y), bits(&dx))
                };
                let (ours, theirs) = (run(false), run(true));
                assert_eq!(ours.0, theirs.0, "case {case} {dtype:?}: outputs");
                assert_eq!(ours.1, theirs.1, "case {case} {dtype:?}: gradients");
            }
        }
    }

    #[test]
    fn bad_taps_and_inputs_are_errors() {
        let ok = || [vec![0u32, 1], vec![1, 2], vec![2, 2], vec![0, 0]];
        let w = || {
            [
                vec![0.25f32; 2],
                vec![0.25; 2],
                vec![0.25; 2],
                vec![0.25; 2],
            ]
        };
        assert!(BilinearTaps::new(2, ok(), w(), 0.0).is_ok());
        let mut past = ok();
        past[1][0] = 3;
        assert!(BilinearTaps::new(2, past, w(), 0.0).is_err());
        let mut short = w();
        short[2].pop();
        assert!(BilinearTaps::new(2, ok(), short, 0.0).is_err());
        assert!(
            BilinearTaps::new(
                0,
                [vec![0u32; 2], vec![0; 2], vec![0; 2], vec![0; 2]],
                w(),
                0.0
            )
            .is_err()
        );
        let taps = BilinearTaps::new(2, ok(), w(), 0.0).unwrap();
        let x = Tensor::zeros((3, 5), DType::F32, &Device::Cpu).unwrap();
        assert!(taps.resample(&x).is_err());
    }
}
