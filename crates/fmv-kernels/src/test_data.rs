//! Seeded inputs, a difference measure and bit patterns for the unit tests.

use candle_core::{Device, Tensor};

/// An f64 tensor of `shape` with values in [−0.5, 0.5) from a linear congruential generator
/// seeded with `seed`: the same values on every run and machine.
pub(crate) fn random(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut s = seed;
    let v: Vec<f64> = (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// `max |a − b|` of two f64 tensors of the same shape.
pub(crate) fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

/// The bit patterns of a float tensor's values, widened to f64 (exact from f32), so that two
/// results compare bit for bit whatever their type.
pub(crate) fn bits(t: &Tensor) -> Vec<u64> {
    let values = t
        .to_dtype(candle_core::DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    slice_bits(&values)
}

/// [`bits`] of a slice: each value widened to f64 (exact from f32, and keeping every sign, zero
/// and NaN apart).
pub(crate) fn slice_bits<T: crate::float::Float>(v: &[T]) -> Vec<u64> {
    v.iter().map(|x| x.to_f64().to_bits()).collect()
}
