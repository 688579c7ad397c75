//! The element types fmv's CPU kernels compute in, and which tensors they serve.

use candle_core::{DType, Tensor, WithDType};

/// The element types the CPU kernels run in (those `gemm` multiplies): `f32` and `f64`.
pub(crate) trait Float: WithDType + Copy + Send + Sync + PartialOrd + 'static {}
impl Float for f32 {}
impl Float for f64 {}

/// `max(v, 0)`, with NaN mapped to 0 like candle's `relu`.
pub(crate) fn relu_of<T: Float>(v: T) -> T {
    if v > T::zero() { v } else { T::zero() }
}

/// Whether fmv's CPU kernels serve a tensor: a CPU tensor of `f32` or `f64`.
pub(crate) fn serves(x: &Tensor) -> bool {
    x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64)
}
