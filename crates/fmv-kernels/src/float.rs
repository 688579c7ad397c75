//! The element types fmv's CPU kernels compute in, and which tensors they serve.

use std::cell::Cell;
use std::thread::LocalKey;

use candle_core::{DType, Tensor, WithDType};

/// The element types the CPU kernels run in (those `gemm` multiplies): `f32` and `f64`.
pub(crate) trait Float: WithDType + Copy + Send + Sync + PartialOrd + 'static {
    /// This thread's scratch of this type (see [`crate::buffer::with_scratch`]).
    fn scratch() -> &'static LocalKey<Cell<Vec<Self>>>;
}

thread_local! {
    static SCRATCH_F32: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
    static SCRATCH_F64: Cell<Vec<f64>> = const { Cell::new(Vec::new()) };
}

impl Float for f32 {
    fn scratch() -> &'static LocalKey<Cell<Vec<Self>>> {
        &SCRATCH_F32
    }
}

impl Float for f64 {
    fn scratch() -> &'static LocalKey<Cell<Vec<Self>>> {
        &SCRATCH_F64
    }
}

/// `max(v, 0)`, with NaN mapped to 0 like candle's `relu`.
pub(crate) fn relu_of<T: Float>(v: T) -> T {
    if v > T::zero() { v } else { T::zero() }
}

/// Whether fmv's CPU kernels serve a tensor: a CPU tensor of `f32` or `f64`.
pub(crate) fn serves(x: &Tensor) -> bool {
    x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64)
}

/// `s` as `f32`s, when `T` is `f32`.
pub(crate) fn as_f32<T: Float>(s: &[T]) -> Option<&[f32]> {
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()).then(|| {
        // SAFETY: `T` is `f32`, so the slice's elements are `f32`s.
        unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<f32>(), s.len()) }
    })
}

/// `s` as `f32`s, when `T` is `f32`.
pub(crate) fn as_f32_mut<T: Float>(s: &mut [T]) -> Option<&mut [f32]> {
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()).then(|| {
        // SAFETY: `T` is `f32`, so the slice's elements are `f32`s.
        unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast::<f32>(), s.len()) }
    })
}
