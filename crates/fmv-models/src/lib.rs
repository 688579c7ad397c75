//! ResNet and VGG in [candle](https://github.com/huggingface/candle) with torchvision's
//! numbers and names, and every intermediate feature map reachable by name.
//!
//! The principal type is [`Model`]: [`Model::load`] reads a safetensors or `.pth` checkpoint,
//! infers its architecture ([`Arch`]) from the tensors' names and shapes, checks that every
//! tensor is used, and folds BatchNorm into the convolutions. Layers are addressed with
//! [`LayerRef`] (a name such as `layer4.1` or `features.28`, or the original
//! FeatureMapVisualizer's integer) and read with [`Backbone::forward_taps`], which stops at the
//! deepest requested tap.
//!
//! ```
//! use std::collections::HashMap;
//! use candle_core::{DType, Device, Tensor};
//! use fmv_models::{Backbone, Checkpoint, LayerRef, LoadOptions, Model};
//!
//! // A one-conv VGG made in memory (real code calls `Model::load(path, ...)`).
//! let mut tensors = HashMap::new();
//! tensors.insert("features.0.weight".to_string(), Tensor::ones((4, 3, 3, 3), DType::F32, &Device::Cpu)?);
//! tensors.insert("features.0.bias".to_string(), Tensor::zeros(4, DType::F32, &Device::Cpu)?);
//! let model = Model::from_checkpoint(Checkpoint::from_tensors("toy", tensors)?, &LoadOptions::new())?;
//!
//! let layer = model.resolve(&LayerRef::Compat(0))?; // the first convolution
//! assert_eq!(model.layer(layer).name, "features.0");
//! let x = Tensor::ones((1, 3, 8, 8), DType::F32, &Device::Cpu)?;
//! let maps = &model.forward_taps(&x, &[layer])?[0];
//! assert_eq!(maps.dims(), &[1, 4, 8, 8]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(clippy::print_stdout, clippy::print_stderr)]

mod arch;
mod checkpoint;
mod classifier;
pub mod demo;
mod error;
mod head;
mod identity;
mod layer;
mod model;
mod ops;
mod pickle;
mod pth;
mod resnet;
mod taps;
mod vgg;

pub use arch::{ARCH_NAMES, Arch, BlockKind, ResNetConfig, Stage, VggConfig, VggItem};
pub use candle_core::{DType, Device, Tensor};
pub use checkpoint::{Checkpoint, Entry, KeyScheme};
pub use error::{Error, Result};
pub use fmv_kernels::{Algorithms, ConvAlgorithm, InputGradAlgorithm, Tile, gpu_convolution};
pub use head::{Activation, Head, HeadItem, HeadLayout, HeadModule, HeadState};
pub use identity::{Provenance, WeightsId};
pub use layer::{Family, LayerId, LayerInfo, LayerKind, LayerRef};
pub use model::{Backbone, LoadOptions, Model, parse_device};
pub use ops::BATCH_NORM_EPS;
pub use taps::Pass;

/// The `.pth` pickle reader, for the fuzz targets in `fuzz/` only (not a public API).
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    /// Unpickles `pickle` as a `.pth`'s `data.pkl` whose archive holds storages `0` to `9`
    /// of 1 MiB each, and returns the number of tensors found, or the error.
    pub fn state_dict(pickle: &[u8]) -> Result<usize, String> {
        crate::pth::fuzz_state_dict(pickle)
    }
}
