//! Integration tests of `fmv-core` against the goldens made by the original package.

mod analysis;
mod decode;
mod golden;
mod parity;
mod patterns;
mod preprocess;
