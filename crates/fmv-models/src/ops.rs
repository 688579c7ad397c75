//! The layers both networks are built from: a convolution with BatchNorm folded in (fmv's own
//! on the CPU, candle's elsewhere), a linear layer, the pools and the residual add+ReLU. Each one
//! is a small struct or function so that the backward pass used by activation maximisation can
//! replace one op without touching the networks.

use std::sync::{Arc, OnceLock};

use candle_core::{DType, Device, Module, Tensor};

use crate::checkpoint::Checkpoint;
use crate::cpu_conv::{self, AddRelu, ConvGeometry, ConvOp, op};
use crate::cpu_pool::MaxPool;
use crate::error::{Error, Result};
use crate::grad::{InputGrad, max_pool2d_differentiable};
use crate::winograd::{self, Tile};

/// BatchNorm's epsilon in torchvision's ResNet and VGG (`nn.BatchNorm2d` default); checkpoints
/// do not record it.
pub const BATCH_NORM_EPS: f64 = 1e-5;

/// Where a convolution's weights are and how it is applied.
pub(crate) struct ConvSpec<'a> {
    pub weight: &'a str,
    pub bias: Option<&'a str>,
    /// Prefix of the BatchNorm that follows (`layer1.0.bn1`), folded into the convolution.
    pub batch_norm: Option<&'a str>,
    pub stride: usize,
    pub padding: usize,
    pub groups: usize,
}

/// A 2-D convolution with its bias and any following BatchNorm folded in (inference
/// statistics, detached: the weights never take part in a gradient).
#[derive(Debug, Clone)]
pub(crate) struct Conv {
    weight: Tensor,
    /// Shape `(1, C, 1, 1)`.
    bias: Option<Tensor>,
    geometry: ConvGeometry,
    /// How the convolution runs; see [`ConvAlgorithm`].
    algorithm: ConvAlgorithm,
    /// The Winograd-transformed kernels for F(2×2, 3×3) (which the input gradient reads too)
    /// and F(4×4, 3×3), each made on first use (most layers only ever need one of them).
    winograd: Arc<[OnceLock<Tensor>; 2]>,
}

/// How the convolutions of a model loaded on the CPU run. Chosen at load time from the
/// environment variable `FMV_CONV` (`winograd`, the default; `winograd2`; `winograd4`; `gemm`;
/// `candle`), so that a benchmark can compare them; other devices always take candle's ops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConvAlgorithm {
    /// fmv's CPU convolution, with Winograd for 3×3 stride-1 layers: F(4×4, 3×3) for inference
    /// on maps of at least [`F4_FROM`] pixels a side, else F(2×2, 3×3). A tracked input always
    /// takes F(2×2, 3×3), which rounds like the direct algorithm: F(4×4, 3×3)'s f32 rounding
    /// moved the compat pattern trajectory 9 % off the original's (`docs/PERFORMANCE.md`).
    Winograd,
    /// As [`ConvAlgorithm::Winograd`], with one tile for every layer (tracked inputs still F2).
    WinogradOnly(Tile),
    /// fmv's CPU convolution, im2col + GEMM for every layer.
    Gemm,
    /// candle's `conv2d` and `conv_transpose2d`.
    Candle,
}

/// The smallest output side on which inference takes F(4×4, 3×3): below it, padding the map to
/// whole 4×4 tiles wastes more than the larger tile saves (ResNet's 14×14 and 7×7 stages).
const F4_FROM: usize = 24;

impl ConvAlgorithm {
    fn from_env(device: &Device, dtype: DType) -> Self {
        if !device.is_cpu() || !matches!(dtype, DType::F32 | DType::F64) {
            return ConvAlgorithm::Candle;
        }
        match std::env::var("FMV_CONV").as_deref() {
            Ok("gemm") => ConvAlgorithm::Gemm,
            Ok("candle") => ConvAlgorithm::Candle,
            Ok("winograd2") => ConvAlgorithm::WinogradOnly(Tile::F2),
            Ok("winograd4") => ConvAlgorithm::WinogradOnly(Tile::F4),
            _ => ConvAlgorithm::Winograd,
        }
    }

    /// The Winograd tile for an output of `side` (the smaller of its sides), `None` when the
    /// algorithm has no Winograd.
    fn tile(self, tracked: bool, side: usize) -> Option<Tile> {
        match self {
            _ if tracked && self.has_winograd() => Some(Tile::F2),
            ConvAlgorithm::Winograd if side >= F4_FROM => Some(Tile::F4),
            ConvAlgorithm::Winograd => Some(Tile::F2),
            ConvAlgorithm::WinogradOnly(tile) => Some(tile),
            _ => None,
        }
    }

    fn has_winograd(self) -> bool {
        matches!(
            self,
            ConvAlgorithm::Winograd | ConvAlgorithm::WinogradOnly(_)
        )
    }
}

impl Conv {
    pub fn load(
        ck: &Checkpoint,
        spec: &ConvSpec<'_>,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        let w = ck.load(spec.weight, &Device::Cpu, DType::F64)?;
        let c_out = w.dims()[0];
        let mut bias = match spec.bias {
            Some(b) => Some(ck.load_f64(b)?),
            None => None,
        };
        let w = match spec.batch_norm {
            None => w,
            Some(bn) => {
                let gamma = ck.load_f64(&format!("{bn}.weight"))?;
                let beta = ck.load_f64(&format!("{bn}.bias"))?;
                let mean = ck.load_f64(&format!("{bn}.running_mean"))?;
                let var_key = format!("{bn}.running_var");
                let var = ck.load_f64(&var_key)?;
                if let Some(channel) = var.iter().position(|v| v + BATCH_NORM_EPS <= 0.0) {
                    return Err(Error::NegativeVariance {
                        path: ck.path().to_path_buf(),
                        key: ck
                            .entries()
                            .get(&var_key)
                            .map_or(var_key.clone(), |e| e.file_key.clone()),
                        channel,
                        value: var[channel],
                        eps: BATCH_NORM_EPS,
                    });
                }
                let scale: Vec<f64> = (0..c_out)
                    .map(|o| gamma[o] / (var[o] + BATCH_NORM_EPS).sqrt())
                    .collect();
                let b0 = bias.take().unwrap_or_else(|| vec![0.0; c_out]);
                bias = Some(
                    (0..c_out)
                        .map(|o| beta[o] + (b0[o] - mean[o]) * scale[o])
                        .collect(),
                );
                let s = Tensor::from_vec(scale, (c_out, 1, 1, 1), &Device::Cpu)?;
                w.broadcast_mul(&s)?
            }
        };
        let bias = match bias {
            Some(b) => Some(
                Tensor::from_vec(b, (1, c_out, 1, 1), &Device::Cpu)?
                    .to_dtype(dtype)?
                    .to_device(device)?,
            ),
            None => None,
        };
        let (_, c_in_g, kh, kw) = w.dims4()?;
        let geometry = ConvGeometry {
            c_in: c_in_g * spec.groups,
            c_out,
            kh,
            kw,
            stride: spec.stride,
            padding: spec.padding,
            groups: spec.groups,
        };
        let weight = w.to_dtype(dtype)?.to_device(device)?;
        let algorithm = ConvAlgorithm::from_env(device, dtype);
        Ok(Conv {
            weight,
            bias,
            geometry,
            algorithm,
            winograd: Arc::default(),
        })
    }
}

impl Conv {
    /// A convolution of the given weight and bias (shape `(1, C, 1, 1)`), for the unit tests.
    #[cfg(test)]
    pub fn from_parts(
        weight: Tensor,
        bias: Option<Tensor>,
        stride: usize,
        padding: usize,
        groups: usize,
    ) -> candle_core::Result<Self> {
        let (c_out, c_in_g, kh, kw) = weight.dims4()?;
        Ok(Conv {
            algorithm: ConvAlgorithm::from_env(weight.device(), weight.dtype()),
            geometry: ConvGeometry {
                c_in: c_in_g * groups,
                c_out,
                kh,
                kw,
                stride,
                padding,
                groups,
            },
            weight,
            bias,
            winograd: Arc::default(),
        })
    }

    /// The folded weight and bias.
    pub fn tensors(&self) -> Vec<&Tensor> {
        std::iter::once(&self.weight)
            .chain(self.bias.as_ref())
            .collect()
    }
}

impl Conv {
    /// `max(conv(x), 0)`: fmv's CPU convolution applies the ReLU in its own pass (and its mask
    /// in the backward pass).
    pub fn forward_relu(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if self.runs_own(x) {
            return self.own(x, true);
        }
        self.forward(x)?.relu()
    }

    /// The output's `(h, w)` for an input of `(h, w)`, or the error saying why the layer
    /// cannot take it.
    pub(crate) fn out_hw(&self, h: usize, w: usize) -> candle_core::Result<(usize, usize)> {
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
    pub(crate) fn runs_own(&self, x: &Tensor) -> bool {
        self.algorithm != ConvAlgorithm::Candle && cpu_conv::serves(x)
    }

    /// fmv's CPU convolution; differentiable with respect to a tracked input only.
    fn own(&self, x: &Tensor, relu: bool) -> candle_core::Result<Tensor> {
        let x = x.contiguous()?;
        let (_, _, h, w) = x.dims4()?;
        let op = self.op((h, w), x.track_op(), relu)?;
        if x.track_op() {
            x.apply_op1(op)
        } else {
            x.apply_op1_no_bwd(&op)
        }
    }

    /// fmv's CPU convolution as an op for an input of `(h, w)`, with its ReLU fused when
    /// `relu`; a `tracked` input takes the kernels whose input gradient is exact enough.
    pub(crate) fn op(
        &self,
        (h, w): (usize, usize),
        tracked: bool,
        relu: bool,
    ) -> candle_core::Result<ConvOp> {
        let side = self.geometry.out_hw(h, w).map_or(0, |(ho, wo)| ho.min(wo));
        let tile = self
            .algorithm
            .tile(tracked, side)
            .filter(|_| self.geometry.takes_winograd());
        Ok(ConvOp {
            geometry: self.geometry,
            weight: self.weight.clone(),
            bias: self.bias.clone(),
            tile: tile.unwrap_or(Tile::F2),
            winograd: tile.map(|t| self.winograd_kernels(t)).transpose()?,
            relu,
        })
    }

    /// The Winograd kernels of `tile`, made once.
    fn winograd_kernels(&self, tile: Tile) -> candle_core::Result<Tensor> {
        let slot = &self.winograd[match tile {
            Tile::F2 => 0,
            Tile::F4 => 1,
        }];
        if let Some(k) = slot.get() {
            return Ok(k.clone());
        }
        let k = winograd::kernels(&self.weight, tile)?;
        Ok(slot.get_or_init(|| k).clone())
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

impl Module for Conv {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if self.runs_own(x) {
            return self.own(x, false);
        }
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
            },
        )
    }
}

/// `relu(a + b)`, the end of a residual block: one fused pass (forward and backward) on the
/// CPU, candle's ops elsewhere.
pub(crate) fn add_relu(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    if !(cpu_conv::serves(a) && a.dtype() == b.dtype() && a.dims() == b.dims()) {
        return (a + b)?.relu();
    }
    let (a, b) = (a.contiguous()?, b.contiguous()?);
    if a.track_op() || b.track_op() {
        a.apply_op2(&b, op::<AddRelu>())
    } else {
        a.apply_op2_no_bwd(&b, &op::<AddRelu>())
    }
}

/// A fully connected layer `y = x·Wᵀ + b`.
#[derive(Debug, Clone)]
pub(crate) struct Linear {
    weight_t: Tensor,
    bias: Tensor,
}

impl Linear {
    pub fn load(ck: &Checkpoint, prefix: &str, device: &Device, dtype: DType) -> Result<Self> {
        let w = ck.load(&format!("{prefix}.weight"), device, dtype)?;
        let b = ck.load(&format!("{prefix}.bias"), device, dtype)?;
        Ok(Linear {
            weight_t: w.t()?.contiguous()?,
            bias: b.unsqueeze(0)?,
        })
    }
}

impl Linear {
    /// The weight (transposed) and bias.
    pub fn tensors(&self) -> Vec<&Tensor> {
        vec![&self.weight_t, &self.bias]
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = x
            .detach()
            .matmul(&self.weight_t)?
            .broadcast_add(&self.bias)?;
        if !x.track_op() {
            return Ok(y);
        }
        x.apply_op2(
            &y,
            InputGrad::Linear {
                weight_t: self.weight_t.clone(),
            },
        )
    }
}

/// Max pooling as torch's `MaxPool2d(k, s, p)` (floor mode).
///
/// On the CPU, fmv's own pool ([`MaxPool`]), forward and backward. Elsewhere candle's, after
/// padding that repeats the edge (`pad_with_same`), which gives the same maxima as torch's −∞
/// padding because torch requires `p ≤ k/2`: every window that covers a padded position also
/// covers the edge value it repeats; a tracked input takes the differentiable version there.
pub(crate) fn max_pool2d(x: &Tensor, k: usize, s: usize, p: usize) -> candle_core::Result<Tensor> {
    if cpu_conv::serves(x) {
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
/// `floor(i·H/oh) .. ceil((i+1)·H/oh)`; likewise for columns.
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
