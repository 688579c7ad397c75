//! Integration tests of `fmv-core` against the goldens made by the original package.

mod golden;
mod parity;
mod preprocess;
mod decode;
