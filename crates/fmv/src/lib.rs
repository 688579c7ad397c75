//! fmv shows what the individual feature maps of a CNN image classifier (ResNet, VGG) respond
//! to. This crate is the facade: it re-exports the three crates that do the work and adds no
//! logic of its own.
//!
//! - [`models`] (`fmv-models`): ResNet and VGG with torchvision parity, checkpoint loading,
//!   named taps ([`Model`], [`LayerRef`]).
//! - [`core`] (`fmv-core`): preprocessing with Pillow parity and every analysis
//!   ([`Visualizer`]); depends on no rendering library, so headless users can depend on it alone.
//! - [`render`] (`fmv-render`): overlays and plots from plain data; never depends on candle.
//!
//! Features: `cuda` and `metal` (candle backends; the device is still chosen at run time),
//! `serde` (serialisation of every result type).
//!
//! ```no_run
//! use fmv::{ActivationsConfig, LayerRef, LoadOptions, Model, Preprocess, Visualizer};
//! let model = Model::load("resnet50.safetensors", &LoadOptions::new())?;
//! let viz = Visualizer::new(model).with_preprocess(Preprocess::imagenet());
//! let cfg = ActivationsConfig::new(LayerRef::Compat(-2)).with_top(5);
//! let acts = viz.activations(&["cat.jpg".into()], &cfg, &mut |_| {})?;
//! println!("most active maps of {}: {:?}", acts.layer, acts.images[0].top);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub use fmv_core as core;
pub use fmv_models as models;
pub use fmv_render as render;

pub use fmv_core::{
    Activations, ActivationsConfig, ChannelMap, ClassRanking, ClassSums, Event, FilterMapsConfig,
    ImageActivations, ImageFolder, ImageMaps, Mode, Objective, Pattern, PatternConfig, Preprocess,
    RankConfig, RankCounts, Ranking, Shard, Skipped, TestClassSums, Visualizer,
};
pub use fmv_models::{Backbone, Device, Family, LayerRef, LoadOptions, Model};
