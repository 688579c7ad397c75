//! Integration tests of `fmv-core` against the goldens made by the original package.
//!
//! The golden tests load their networks where `FMV_TEST_DEVICE` says (`cpu` by default; `cuda`
//! in a build with `--features cuda`), so the same goldens check the GPU path; the `cuda`
//! module compares the GPU with the CPU directly.

mod analysis;
mod backprop;
#[cfg(feature = "cuda")]
mod cuda;
mod decode;
mod golden;
mod meaning;
mod parity;
mod patterns;
mod preprocess;
