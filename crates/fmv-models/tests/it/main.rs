//! Integration tests of `fmv-models`.

mod ablation;
mod arch;
mod errors;
mod gradients;
mod heads;
mod identity;
mod pth;
mod selection;
mod torch_parity;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

/// The repository's `testdata/` folder.
pub fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

/// One of the two small reference networks.
pub fn reference_weights(name: &str) -> PathBuf {
    testdata()
        .join("reference/weights")
        .join(format!("{name}.safetensors"))
}

/// All tensors of a safetensors file, for tests that edit a checkpoint.
pub fn tensors_of(path: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu).unwrap()
}

/// The deterministic input the torch fixtures were computed on (see `make_fixtures.py`).
pub fn test_input(n: usize, h: usize, w: usize) -> Tensor {
    let mut v = Vec::with_capacity(n * 3 * h * w);
    for i in 0..n {
        for c in 0..3 {
            for y in 0..h {
                for x in 0..w {
                    v.push(((i * 7 + c * 13 + y * 31 + x * 17) % 251) as f32 / 250.0);
                }
            }
        }
    }
    Tensor::from_vec(v, (n, 3, h, w), &Device::Cpu).unwrap()
}

/// Per-channel spatial means (`N×C`), or the values themselves for logits.
pub fn means(t: &Tensor) -> Vec<Vec<f32>> {
    let t = if t.rank() == 4 {
        t.mean((2, 3)).unwrap()
    } else {
        t.clone()
    };
    t.to_dtype(DType::F32).unwrap().to_vec2().unwrap()
}
