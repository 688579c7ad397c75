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
