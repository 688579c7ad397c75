//! The embedded demo networks: a tiny ResNet and a tiny VGG in torchvision layout, trained by
//! `cargo xtask train-demo` on the generated demo images (`fmv_core::demo`): four classes
//! (blobs, checkerboards, ring outlines, stripes) at 96×96, inputs in `[0, 1]` (the `original`
//! preprocessing at size 96). They make `fmv report` work offline with no download.
//!
//! ```
//! use fmv_models::{Backbone, LoadOptions};
//! use fmv_models::demo::DemoNet;
//! let model = DemoNet::ResNet.load(&LoadOptions::new())?;
//! assert_eq!(model.layer(model.resolve(&DemoNet::ResNet.layer())?).channels, 64);
//! # Ok::<(), fmv_models::Error>(())
//! ```

use crate::checkpoint::Checkpoint;
use crate::error::Result;
use crate::layer::LayerRef;
use crate::model::{LoadOptions, Model};

/// One of the two embedded demo networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoNet {
    /// ResNet-style: BasicBlocks, one per stage, widths 16/32/64/64 (158 k trainable parameters).
    ResNet,
    /// VGG-style: 16-M-32-M-64-M-64-M with BatchNorm and a 32-wide classifier (162 k).
    Vgg,
}

/// The class names, in label order.
pub const DEMO_CLASSES: [&str; 4] = ["blobs", "checkerboard", "rings", "stripes"];

impl DemoNet {
    /// `resnet` or `vgg`.
    pub fn name(self) -> &'static str {
        match self {
            DemoNet::ResNet => "resnet",
            DemoNet::Vgg => "vgg",
        }
    }

    /// Parses `resnet` or `vgg`.
    pub fn from_name(name: &str) -> Option<DemoNet> {
        match name {
            "resnet" => Some(DemoNet::ResNet),
            "vgg" => Some(DemoNet::Vgg),
            _ => None,
        }
    }

    /// The weights file under `models/demo/`.
    pub fn file_name(self) -> &'static str {
        match self {
            DemoNet::ResNet => "resnet_demo.safetensors",
            DemoNet::Vgg => "vgg_demo.safetensors",
        }
    }

    /// The safetensors bytes, compiled into the binary.
    pub fn bytes(self) -> &'static [u8] {
        match self {
            DemoNet::ResNet => include_bytes!("../../../models/demo/resnet_demo.safetensors"),
            DemoNet::Vgg => include_bytes!("../../../models/demo/vgg_demo.safetensors"),
        }
    }

    /// The layer the demo report analyses ([`DemoNet::layer_name`]).
    pub fn layer(self) -> LayerRef {
        LayerRef::Name(self.layer_name().to_string())
    }

    /// The name of [`DemoNet::layer`]: `layer4` for the ResNet (the last stage, 64 maps of
    /// 3×3 at 96 px), `features.12` for the VGG (the last convolution, 64 maps of 12×12). These
    /// separate the classes best (see `models/demo/README.md`).
    pub fn layer_name(self) -> &'static str {
        match self {
            DemoNet::ResNet => "layer4",
            DemoNet::Vgg => "features.12",
        }
    }

    /// Loads the embedded network (on `opts`' device). Its provenance names the file it was
    /// made from, `(embedded) models/demo/<file>`, and its identity is that file's sha256.
    pub fn load(self, opts: &LoadOptions) -> Result<Model> {
        let label = format!("(embedded) models/demo/{}", self.file_name());
        Model::from_checkpoint(
            Checkpoint::from_safetensors_bytes(label, self.bytes())?,
            opts,
        )
    }
}
