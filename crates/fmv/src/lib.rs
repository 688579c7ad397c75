//! fmv shows what the individual feature maps of a CNN image classifier (ResNet, VGG) respond
//! to. This crate is the facade: it re-exports the crates that do the work, a [`prelude`] of
//! what most programs use, and one [`Error`] for all of them; it adds no logic of its own.
//!
//! - [`kernels`] (`fmv-kernels`): fmv's CPU kernels as candle ops ([`ConvAlgorithm`]).
//! - [`models`] (`fmv-models`): ResNet and VGG with torchvision parity, checkpoint loading,
//!   named taps ([`Model`], [`LayerRef`]).
//! - [`core`] (`fmv-core`): preprocessing with Pillow parity and every analysis
//!   ([`Visualizer`]); depends on no rendering library, so headless users can depend on it alone.
//! - [`render`] (`fmv-render`): overlays and plots from plain data; never depends on candle.
//! - [`report`] (`fmv-report`): the whole pipeline as one static HTML report, and the adapters
//!   from results to pictures.
//!
//! Features: `cuda` and `metal` (candle backends; the device is still chosen at run time),
//! `serde` (serialisation of every result type).
//!
//! ```no_run
//! use fmv::prelude::*;
//! let model = Model::load("resnet50.safetensors", &LoadOptions::new())?;
//! let viz = Visualizer::new(model).with_preprocess(Preprocess::imagenet());
//! let cfg = ActivationsConfig::new(LayerRef::Compat(-2)).with_top(5);
//! let acts = viz.activations(&["cat.jpg".into()], &cfg, &mut ())?;
//! println!("most active maps of {}: {:?}", acts.layer, acts.images[0].top);
//! # Ok::<(), fmv::Error>(())
//! ```

pub use fmv_core as core;
pub use fmv_kernels as kernels;
pub use fmv_models as models;
pub use fmv_render as render;
pub use fmv_report as report;

pub use fmv_core::{
    Ablation, AblationConfig, Activations, ActivationsConfig, ChannelMap, ClassAblation,
    ClassRanking, ClassSums, ClassSumsConfig, CompatConfig, Event, Exemplar, ExemplarStat,
    Exemplars, ExemplarsConfig, FilterMaps, FilterMapsConfig, ImageActivations, ImageFolder,
    ImageList, ImageMaps, MapExemplars, MaxActivations, MaxActivationsConfig, Mode, Objective,
    Observer, Pattern, PatternAlgorithm, PatternConfig, Plateau, Preprocess, RandomDrops,
    RankConfig, RankCounts, Ranking, RgbImage, RobustConfig, Shard, Skipped, TestClassSums,
    Visualizer,
};
pub use fmv_kernels::{Algorithms, ConvAlgorithm, InputGradAlgorithm, Tile, gpu_convolution};
pub use fmv_models::{Backbone, Device, Family, LayerRef, LoadOptions, Model, Provenance};
pub use fmv_report::{Folders, Report, ReportConfig, Style};

/// What most programs use: the model, the visualiser, every analysis's config and the observer.
pub mod prelude {
    pub use crate::{
        AblationConfig, ActivationsConfig, Backbone, ClassSumsConfig, CompatConfig, Device, Event,
        ExemplarsConfig, FilterMapsConfig, ImageFolder, ImageList, LayerRef, LoadOptions, Model,
        Observer, PatternConfig, Preprocess, RankConfig, RobustConfig, Visualizer,
    };
}

/// Any error of fmv's crates, so that a program using several of them can return one type.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Loading or running a network (`fmv-models`).
    #[error(transparent)]
    Model(#[from] fmv_models::Error),
    /// An analysis (`fmv-core`).
    #[error(transparent)]
    Analysis(#[from] fmv_core::Error),
    /// Drawing a picture (`fmv-render`).
    #[error(transparent)]
    Render(#[from] fmv_render::RenderError),
    /// Building a report (`fmv-report`).
    #[error(transparent)]
    Report(#[from] fmv_report::Error),
}

/// A `Result` whose error is [`enum@Error`].
pub type Result<T> = std::result::Result<T, Error>;
