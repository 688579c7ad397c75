//! How the convolutions of both networks are read from a checkpoint, with BatchNorm folded in
//! (in f64, before rounding to the model's float type), built as `fmv-kernels`' layers (the
//! head's layers are in `classifier.rs`).

use candle_core::{DType, Device, Tensor};
use fmv_kernels::{Algorithms, Conv2d};

use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};

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

/// BatchNorm's inference statistics, in f64: `y = (x − mean)·scale + beta`, with
/// `scale = γ/√(var + ε)`.
pub(crate) struct BatchNorm {
    pub scale: Vec<f64>,
    pub mean: Vec<f64>,
    pub beta: Vec<f64>,
}

impl BatchNorm {
    /// Reads the BatchNorm at `prefix` (`layer1.0.bn1`); without `affine` (torch's
    /// `affine=False`), γ = 1 and β = 0. A variance below −ε is refused, naming its channel.
    pub fn load(ck: &Checkpoint, prefix: &str, affine: bool) -> Result<Self> {
        let mean = ck.load_f64(&format!("{prefix}.running_mean"))?;
        let var_key = format!("{prefix}.running_var");
        let var = ck.load_f64(&var_key)?;
        let (gamma, beta) = if affine {
            (
                ck.load_f64(&format!("{prefix}.weight"))?,
                ck.load_f64(&format!("{prefix}.bias"))?,
            )
        } else {
            (vec![1.0; mean.len()], vec![0.0; mean.len()])
        };
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
        let scale = gamma
            .iter()
            .zip(&var)
            .map(|(g, v)| g / (v + BATCH_NORM_EPS).sqrt())
            .collect();
        Ok(BatchNorm { scale, mean, beta })
    }

    /// The bias of channel `c` of a layer whose bias was `bias` before this BatchNorm.
    pub fn bias_after(&self, c: usize, bias: f64) -> f64 {
        self.beta[c] + (bias - self.mean[c]) * self.scale[c]
    }
}

/// How a model's layers are made: on which device, in which float type, with which kernels.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Build<'a> {
    pub device: &'a Device,
    pub dtype: DType,
    pub algorithms: Algorithms,
}

/// The convolution `spec` describes, with its bias and any following BatchNorm folded in
/// (inference statistics; the weights never take part in a gradient).
pub(crate) fn load_conv(ck: &Checkpoint, spec: &ConvSpec<'_>, build: Build<'_>) -> Result<Conv2d> {
    let Build {
        device,
        dtype,
        algorithms,
    } = build;
    let w = ck.load(spec.weight, &Device::Cpu, DType::F64)?;
    let c_out = w.dims()[0];
    let mut bias = match spec.bias {
        Some(b) => Some(ck.load_f64(b)?),
        None => None,
    };
    let w = match spec.batch_norm {
        None => w,
        Some(bn) => {
            let bn = BatchNorm::load(ck, bn, true)?;
            let scale = bn.scale.clone();
            let b0 = bias.take().unwrap_or_else(|| vec![0.0; c_out]);
            bias = Some((0..c_out).map(|o| bn.bias_after(o, b0[o])).collect());
            let s = Tensor::from_vec(scale, (c_out, 1, 1, 1), &Device::Cpu)?;
            w.broadcast_mul(&s)?
        }
    };
    let bias = match bias {
        Some(b) => Some(
            Tensor::from_vec(b, c_out, &Device::Cpu)?
                .to_dtype(dtype)?
                .to_device(device)?,
        ),
        None => None,
    };
    let weight = w.to_dtype(dtype)?.to_device(device)?;
    Ok(Conv2d::new(
        weight,
        bias,
        spec.stride,
        spec.padding,
        spec.groups,
        algorithms,
    )?)
}
