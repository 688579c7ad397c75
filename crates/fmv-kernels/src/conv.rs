//! [`Conv2d`]: a convolution with its weights, the one dispatcher every network layer calls.
//! On the CPU it runs fmv's own convolution ([`crate::conv_op`]) as the model's
//! [`ConvAlgorithm`] says; elsewhere candle's, made differentiable with respect to the input
//! only ([`crate::input_grad`]).

use std::sync::{Arc, Mutex, PoisonError};

use candle_core::{Module, Tensor};

use crate::algorithm::{Algorithms, ConvAlgorithm, Tile};
use crate::conv_op::ConvOp;
use crate::float::serves;
use crate::geometry::ConvGeometry;
use crate::input_grad::InputGrad;
use crate::winograd;

/// A 2-D convolution with its weight `(c_out, c_in/groups, kh, kw)` and bias, ready to run on
/// any device. Its output is differentiable with respect to a tracked input only: no backward
/// pass ever computes a weight's gradient.
///
/// ```
/// use candle_core::{DType, Device, Module, Tensor};
/// use fmv_kernels::{Algorithms, Conv2d};
/// let weight = Tensor::ones((4, 3, 3, 3), DType::F32, &Device::Cpu)?;
/// let conv = Conv2d::new(weight, None, 1, 1, 1, Algorithms::default())?;
/// let y = conv.forward_relu(&Tensor::ones((2, 3, 8, 8), DType::F32, &Device::Cpu)?)?;
/// assert_eq!(y.dims(), &[2, 4, 8, 8]);
/// # Ok::<(), candle_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor,
    /// Shape `(1, C, 1, 1)`.
    bias: Option<Tensor>,
    geometry: ConvGeometry,
    algorithms: Algorithms,
    /// The Winograd-transformed kernels for F(2×2, 3×3) (which the input gradient reads too),
    /// F(4×4, 3×3), and F(4×4, 3×3)'s for the input gradient, each made on first use (most
    /// layers only ever need one or two of them), once: a caller that finds another making them
    /// waits for those rather than making its own copy (the lanes of a patterns run all reach
    /// every layer in their first step at once).
    winograd: Arc<[Mutex<Option<Tensor>>; 3]>,
}

impl Conv2d {
    /// The convolution of `weight` (`(c_out, c_in/groups, kh, kw)`) and `bias` (`c_out`
    /// values, any shape), with this stride, zero padding on every side and number of groups.
    /// `algorithms` chooses how it runs; off the CPU, convolutions run on candle's ops.
    pub fn new(
        weight: Tensor,
        bias: Option<Tensor>,
        stride: usize,
        padding: usize,
        groups: usize,
        algorithms: Algorithms,
    ) -> candle_core::Result<Self> {
        let (c_out, c_in_g, kh, kw) = weight.dims4()?;
        if stride == 0 || groups == 0 || c_out % groups != 0 {
            candle_core::bail!(
                "fmv conv: stride {stride} and {groups} group(s) do not fit {c_out} output channels"
            );
        }
        let bias = bias.map(|b| b.reshape((1, c_out, 1, 1))).transpose()?;
        Ok(Conv2d {
            geometry: ConvGeometry {
                c_in: c_in_g * groups,
                c_out,
                kh,
                kw,
                stride,
                padding,
                groups,
            },
            algorithms: Algorithms {
                conv: algorithms.conv.effective(weight.device(), weight.dtype()),
                ..algorithms
            },
            weight,
            bias,
            winograd: Arc::default(),
        })
    }

    /// This convolution with only the output channels `channels`, in that order: its output's
    /// channel `j` is this one's channel `channels[j]`, by the same algorithm and tile, so a
    /// caller that needs a few channels of a layer does not compute the others (nor, in the
    /// backward pass, carry their zero gradients through the layer). Errors on an empty list, a
    /// channel out of range or a grouped convolution (whose output channels read only their
    /// group's inputs).
    ///
    /// ```
    /// use candle_core::{DType, Device, IndexOp, Tensor};
    /// use fmv_kernels::{Algorithms, Conv2d};
    /// let weight = Tensor::randn(0f32, 1.0, (8, 3, 3, 3), &Device::Cpu)?;
    /// let conv = Conv2d::new(weight, None, 1, 1, 1, Algorithms::default())?;
    /// let x = Tensor::randn(0f32, 1.0, (1, 3, 6, 6), &Device::Cpu)?;
    /// let two = conv.with_out_channels(&[5, 2])?.forward_relu(&x)?;
    /// let all = conv.forward_relu(&x)?;
    /// assert_eq!(two.dims(), &[1, 2, 6, 6]);
    /// let diff = (two.i((0, 0))? - all.i((0, 5))?)?.abs()?.max_all()?.to_scalar::<f32>()?;
    /// assert!(diff < 1e-5);
    /// # Ok::<(), candle_core::Error>(())
    /// ```
    pub fn with_out_channels(&self, channels: &[usize]) -> candle_core::Result<Self> {
        let g = self.geometry;
        if g.groups != 1 {
            candle_core::bail!(
                "fmv conv: cannot keep some output channels of a convolution in {} groups",
                g.groups
            );
        }
        if channels.is_empty() {
            candle_core::bail!("fmv conv: no output channel to keep");
        }
        if let Some(&c) = channels.iter().find(|&&c| c >= g.c_out) {
            candle_core::bail!(
                "fmv conv: output channel {c} does not exist (the layer has {} channels, 0..={})",
                g.c_out,
                g.c_out - 1
            );
        }
        let ids: Vec<u32> = channels.iter().map(|&c| c as u32).collect();
        let ids = Tensor::from_vec(ids, channels.len(), self.weight.device())?;
        Ok(Conv2d {
            weight: self.weight.index_select(&ids, 0)?,
            bias: self
                .bias
                .as_ref()
                .map(|b| b.index_select(&ids, 1))
                .transpose()?,
            geometry: ConvGeometry {
                c_out: channels.len(),
                ..g
            },
            algorithms: self.algorithms,
            winograd: Arc::default(),
        })
    }

    /// The weight and the bias (shape `(1, C, 1, 1)`), if any.
    pub fn tensors(&self) -> Vec<&Tensor> {
        std::iter::once(&self.weight)
            .chain(self.bias.as_ref())
            .collect()
    }

    /// The algorithms this convolution runs (its convolution algorithm as it runs on the
    /// weights' device).
    pub fn algorithms(&self) -> Algorithms {
        self.algorithms
    }

    /// `max(conv(x), 0)`: fmv's CPU convolution applies the ReLU in its own pass (and its mask
    /// in the backward pass). A tracked input takes F(2×2, 3×3) at most
    /// ([`Conv2d::forward_relu_with`]).
    pub fn forward_relu(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_relu_with(x, Tile::F2)
    }

    /// [`Conv2d::forward_relu`] where a tracked input may take Winograd tiles up to
    /// `tracked_tile` (forward and backward): [`Tile::F2`] rounds like the direct algorithm,
    /// [`Tile::F4`] needs 1.8× fewer multiplications on large maps.
    pub fn forward_relu_with(&self, x: &Tensor, tracked_tile: Tile) -> candle_core::Result<Tensor> {
        if self.runs_own(x) {
            return self.own(x, true, tracked_tile);
        }
        self.forward(x)?.relu()
    }

    /// The convolution without ReLU, a tracked input taking Winograd tiles up to
    /// `tracked_tile` (as [`Conv2d::forward_relu_with`]).
    pub fn forward_with(&self, x: &Tensor, tracked_tile: Tile) -> candle_core::Result<Tensor> {
        if self.runs_own(x) {
            return self.own(x, false, tracked_tile);
        }
        self.forward_stock(x)
    }

    /// The output's `(h, w)` for an input of `(h, w)`, or the error saying why the layer
    /// cannot take it.
    pub fn out_hw(&self, h: usize, w: usize) -> candle_core::Result<(usize, usize)> {
        match self.geometry.out_hw(h, w) {
            Some(hw) => Ok(hw),
            None => candle_core::bail!(
                "fmv conv: a {h}×{w} input is smaller than the {}×{} kernel",
                self.geometry.kh,
                self.geometry.kw
            ),
        }
    }

    /// Whether fmv's CPU convolution runs this layer on `x`.
    pub fn runs_own(&self, x: &Tensor) -> bool {
        self.algorithms.conv != ConvAlgorithm::Candle && serves(x)
    }

    /// fmv's CPU convolution; differentiable with respect to a tracked input only.
    fn own(&self, x: &Tensor, relu: bool, tracked_tile: Tile) -> candle_core::Result<Tensor> {
        let x = x.contiguous()?;
        let (_, _, h, w) = x.dims4()?;
        let tracked = x.track_op().then_some(tracked_tile);
        let op = self.op((h, w), tracked, relu)?;
        if x.track_op() {
            x.apply_op1(op)
        } else {
            x.apply_op1_no_bwd(&op)
        }
    }

    /// fmv's CPU convolution as an op for an input of `(h, w)`, with its ReLU fused when
    /// `relu`; `tracked` is, for a tracked input, the largest Winograd tile its caller allows
    /// (the op then holds the kernels its input gradient reads).
    pub(crate) fn op(
        &self,
        (h, w): (usize, usize),
        tracked: Option<Tile>,
        relu: bool,
    ) -> candle_core::Result<ConvOp> {
        let side = self.geometry.out_hw(h, w).map_or(0, |(ho, wo)| ho.min(wo));
        let tile = self
            .algorithms
            .conv
            .tile(tracked, side, self.geometry.c_in)
            .filter(|_| self.geometry.takes_winograd());
        let adjoint = match tile {
            Some(Tile::F4) if tracked.is_some() => Some(self.winograd_kernels(Tile::F4, true)?),
            _ => None,
        };
        Ok(ConvOp {
            geometry: self.geometry,
            weight: self.weight.clone(),
            bias: self.bias.clone(),
            tile: tile.unwrap_or(Tile::F2),
            winograd: tile.map(|t| self.winograd_kernels(t, false)).transpose()?,
            adjoint,
            relu,
        })
    }

    /// The Winograd kernels of `tile` (those of the input gradient's convolution when
    /// `adjoint`), made once.
    fn winograd_kernels(&self, tile: Tile, adjoint: bool) -> candle_core::Result<Tensor> {
        let slot = &self.winograd[match (tile, adjoint) {
            (Tile::F2, _) => 0,
            (Tile::F4, false) => 1,
            (Tile::F4, true) => 2,
        }];
        // A panic while the slot was held left it empty or filled, never half made.
        let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(k) = slot.as_ref() {
            return Ok(k.clone());
        }
        let k = winograd::kernels(&self.weight, tile, adjoint)?;
        Ok(slot.insert(k).clone())
    }

    /// candle's convolution and bias on a detached input.
    fn stock(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let g = &self.geometry;
        let y = x.conv2d(&self.weight, g.padding, g.stride, 1, g.groups)?;
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

impl Module for Conv2d {
    /// The convolution without ReLU; a tracked input takes F(2×2, 3×3) at most.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_with(x, Tile::F2)
    }
}

impl Conv2d {
    /// The convolution on candle's ops (any device), differentiable with respect to the input
    /// only.
    fn forward_stock(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if !x.track_op() {
            return self.stock(x);
        }
        // Differentiable with respect to the input only.
        let g = &self.geometry;
        x.apply_op2(
            &self.stock(&x.detach())?,
            InputGrad::Conv {
                weight: self.weight.clone(),
                stride: g.stride,
                padding: g.padding,
                groups: g.groups,
                algorithm: self.algorithms.input_grad,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};

    use super::*;
    use crate::test_data::{bits, random};

    /// The kept channels of every algorithm fmv runs (GEMM of a strided 7×7, pointwise,
    /// Winograd F(2×2) and F(4×4) at inference) are the whole layer's, bit for bit.
    #[test]
    fn kept_output_channels_are_the_whole_layers_bit_for_bit() {
        // (c_in, c_out, k, stride, padding, h)
        for (i, &(c_in, c_out, k, stride, padding, h)) in [
            (3, 8, 7, 2, 3, 19),
            (6, 12, 1, 1, 0, 9),
            (16, 7, 3, 1, 1, 10),
            (16, 7, 3, 1, 1, 30),
        ]
        .iter()
        .enumerate()
        {
            let f32s = |t: Tensor| t.to_dtype(DType::F32).unwrap();
            let weight = f32s(random(&[c_out, c_in, k, k], 10 + i as u64));
            let bias = f32s(random(&[c_out], 20 + i as u64));
            let conv = Conv2d::new(
                weight,
                Some(bias),
                stride,
                padding,
                1,
                Algorithms::default(),
            )
            .unwrap();
            let x = f32s(random(&[2, c_in, h, h + 3], 30 + i as u64));
            let kept = [c_out - 1, 0, 2, 2];
            let ids = Tensor::new(&[c_out as u32 - 1, 0, 2, 2], &Device::Cpu).unwrap();
            let some = conv.with_out_channels(&kept).unwrap();
            for relu in [false, true] {
                let run = |c: &Conv2d| {
                    if relu {
                        c.forward_relu(&x).unwrap()
                    } else {
                        c.forward(&x).unwrap()
                    }
                };
                let want = run(&conv).index_select(&ids, 1).unwrap();
                assert_eq!(bits(&run(&some)), bits(&want), "case {i}, relu {relu}");
            }
        }
    }

    /// By default a 3×3 layer of an image's few channels runs im2col + GEMM, forward and
    /// backward, and one of 16 input channels Winograd (whatever its output channels); the
    /// forced tiles take every 3×3 layer.
    #[test]
    fn few_input_channels_leave_winograd_to_the_forced_tiles() {
        let op_tile = |c_in, c_out, conv, tracked| {
            let weight = Tensor::ones((c_out, c_in, 3, 3), DType::F32, &Device::Cpu).unwrap();
            let algorithms = Algorithms {
                conv,
                ..Algorithms::default()
            };
            let op = Conv2d::new(weight, None, 1, 1, 1, algorithms)
                .unwrap()
                .op((32, 32), tracked, true)
                .unwrap();
            op.winograd
                .as_ref()
                .map(|_| (op.tile, op.adjoint.is_some()))
        };
        let w = ConvAlgorithm::Winograd;
        for tracked in [None, Some(Tile::F2), Some(Tile::F4)] {
            assert_eq!(op_tile(3, 64, w, tracked), None);
            assert_eq!(op_tile(15, 64, w, tracked), None);
        }
        assert_eq!(op_tile(16, 3, w, None), Some((Tile::F4, false)));
        assert_eq!(op_tile(16, 3, w, Some(Tile::F4)), Some((Tile::F4, true)));
        assert_eq!(op_tile(16, 64, w, Some(Tile::F2)), Some((Tile::F2, false)));
        let forced = ConvAlgorithm::WinogradOnly(Tile::F4);
        assert_eq!(
            op_tile(3, 64, forced, Some(Tile::F4)),
            Some((Tile::F4, true))
        );
    }

    #[test]
    fn keeping_channels_that_cannot_be_kept_is_an_error() {
        let conv = |groups| {
            let weight = Tensor::ones((8, 8 / groups, 3, 3), DType::F32, &Device::Cpu).unwrap();
            Conv2d::new(weight, None, 1, 1, groups, Algorithms::default()).unwrap()
        };
        let err = |c: Conv2d, kept: &[usize]| c.with_out_channels(kept).unwrap_err().to_string();
        assert!(err(conv(1), &[8]).contains("output channel 8 does not exist (the layer has 8"));
        assert!(err(conv(1), &[]).contains("no output channel"));
        assert!(err(conv(2), &[0]).contains("in 2 groups"));
    }
}
