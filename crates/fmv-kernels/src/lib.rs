//! fmv's CPU kernels, as candle ops: the convolution (im2col + GEMM, and Winograd F(2×2, 3×3)
//! and F(4×4, 3×3) for the 3×3 layers), max pooling, a residual block as one op, the
//! element-wise ops, and the ops that make a network differentiable with respect to its input
//! only, on every device.
//!
//! The principal type is [`Conv2d`], a convolution with its weights that runs fmv's own
//! kernels on the CPU and candle's elsewhere, as the [`ConvAlgorithm`] it was made with says;
//! [`max_pool2d`], [`residual`], [`add_relu`] and [`Linear`] are the other layers' ops, and
//! [`InverseDft2`] and [`BilinearTaps`] make and warp a robust pattern's image. A network built from them
//! (as `fmv-models` builds ResNet and VGG) computes the same maps as torch, and a backward pass
//! through it computes the input's gradient and never a weight's.
//!
//! ```
//! use candle_core::{DType, Device, Module, Tensor, Var};
//! use fmv_kernels::{Algorithms, Conv2d, max_pool2d};
//! let weight = Tensor::ones((8, 3, 3, 3), DType::F32, &Device::Cpu)?;
//! let conv = Conv2d::new(weight, None, 1, 1, 1, Algorithms::default())?;
//! let x = Var::ones((1, 3, 16, 16), DType::F32, &Device::Cpu)?;
//! let y = max_pool2d(&conv.forward_relu(x.as_tensor())?, 2, 2, 0)?;
//! let grads = y.mean_all()?.backward()?;
//! assert_eq!(grads.get(x.as_tensor()).unwrap().dims(), &[1, 3, 16, 16]);
//! # Ok::<(), candle_core::Error>(())
//! ```
//!
//! The modules are layered bottom-up, and nothing imports upward: the primitives (`float`,
//! `buffer`, `matmul`, `geometry`, `algorithm`), then the kernels that use them (`elementwise`,
//! `im2col`, `winograd`, `pool`, `input_grad`, `fourier`, `resample`), then the CPU convolution op that chooses
//! between them (`conv_op`), then the layers (`conv`, `linear`, `block`).

#![deny(clippy::print_stdout, clippy::print_stderr)]

mod algorithm;
mod block;
mod buffer;
mod conv;
mod conv_op;
mod elementwise;
mod float;
mod fourier;
mod geometry;
mod im2col;
mod input_grad;
mod linear;
mod matmul;
mod pool;
mod resample;
#[cfg(test)]
mod test_data;
mod winograd;

pub use algorithm::{
    Algorithms, ConvAlgorithm, InputGradAlgorithm, Tile, UnknownAlgorithm, gpu_convolution,
};
pub use block::{residual, residual_with};
pub use conv::Conv2d;
pub use elementwise::add_relu;
pub use fourier::InverseDft2;
pub use input_grad::max_pool2d_differentiable;
pub use linear::Linear;
pub use pool::{adaptive_avg_pool2d, max_pool2d};
pub use resample::BilinearTaps;
