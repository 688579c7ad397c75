//! Feature-map analysis for CNN image classifiers, without any rendering dependency.
//!
//! The principal type is [`Visualizer`]: a network ([`fmv_models::Backbone`]) plus the way
//! images become its inputs ([`Preprocess`]). Every analysis is a method on it of one shape,
//! `viz.analysis(inputs, &AnalysisConfig, &mut observer) -> Result<Analysis>`, whose result is
//! plain data (no tensors) and whose [`Observer`] receives progress and skipped files and can
//! stop the run:
//!
//! - [`Visualizer::rank`] ([`RankConfig`]): per class of a training [`ImageFolder`], the maps
//!   most often among each image's most active maps, minus those other classes share
//!   (shardable and resumable through [`RankCounts`]);
//! - [`Visualizer::activations`] ([`ActivationsConfig`]): each channel's mean activation and
//!   the most active channels (and their maps) of each image;
//! - [`Visualizer::filter_maps`] ([`FilterMapsConfig`]): one or several maps over many images,
//!   streamed to the observer;
//! - [`Visualizer::class_sums`] ([`ClassSumsConfig`]): per test image, the summed activation of
//!   each class's maps, with a separability figure per class;
//! - [`Visualizer::maximize`] ([`PatternConfig`]): activation maximisation, the original's
//!   algorithm ([`CompatConfig`]) or the field's ([`RobustConfig`]);
//! - [`Visualizer::exemplars`] ([`ExemplarsConfig`]): per map, the real images of an
//!   [`ImageList`] where it is most active, and where (shardable and resumable);
//! - [`Visualizer::ablate`] ([`AblationConfig`]): each class's maps zeroed, its logit and the
//!   accuracy before and after, against random sets of as many maps.
//!
//! Preprocessing reproduces FeatureMapVisualizer's (Pillow's decode, `convert('RGB')` and
//! antialiased bilinear resize) bit for bit with [`Preprocess::original`]; the default,
//! [`Preprocess::imagenet`], adds the normalisation pretrained weights expect. The modules
//! [`pixels`], [`files`] and [`stats`] hold the building blocks (decoding and resizing as
//! Pillow and OpenCV do, listing image files, the ranking rule), [`process`] the start-up
//! settings binaries make, and [`demo`] the generated demo images.
//!
//! ```
//! use fmv_core::{Preprocess, stats::top_n, pixels::RgbImage};
//! let img = RgbImage { width: 2, height: 2, pixels: vec![255; 12] };
//! let x = Preprocess::original().apply(&img); // 3×224×224, all 1.0
//! assert_eq!(x.len(), 3 * 224 * 224);
//! assert!(x.iter().all(|&v| v == 1.0));
//! assert_eq!(top_n(&[0.1f32, 0.9, 0.5], 2), vec![1, 2]);
//! ```

#![deny(clippy::print_stdout, clippy::print_stderr)]

mod ablation;
mod activations;
mod class_sums;
mod cubic;
mod dataset;
mod decode;
pub mod demo;
mod error;
mod exemplars;
mod inputs;
mod labels;
mod lanes;
mod lists;
mod maps;
mod memory;
mod model_config;
mod observer;
mod patterns;
mod preprocess;
pub mod process;
mod rank;
mod relay;
mod resize;
pub mod rng;
mod stream;
mod topk;
mod visualizer;

pub use ablation::{Ablation, AblationConfig, ClassAblation, RandomDrops};
pub use activations::{Activations, ActivationsConfig, ChannelMap, ImageActivations};
pub use class_sums::{ClassSums, ClassSumsConfig, TestClassSums};
pub use dataset::{ClassFolder, ImageFolder, ImageList};
pub use decode::RgbImage;
pub use error::{Error, Field, Problem, Result};
pub use exemplars::{Exemplar, ExemplarStat, Exemplars, ExemplarsConfig, MapExemplars};
pub use inputs::Skipped;
pub use labels::{check_labels, read_labels};
pub use maps::{FilterMaps, FilterMapsConfig, ImageMaps};
pub use model_config::TimmConfig;
pub use observer::{Event, Observer};
pub use patterns::{
    CompatConfig, MaxActivations, MaxActivationsConfig, Mode, Objective, Pattern, PatternAlgorithm,
    PatternConfig, Plateau, RobustConfig,
};
pub use preprocess::Preprocess;
pub use rank::{ClassCounts, ClassRanking, RankConfig, RankCounts, Ranking, Shard};
pub use visualizer::Visualizer;

/// Decoding and resizing images exactly as the original's libraries do: Pillow's decode and
/// `convert('RGB')`, Pillow's antialiased bilinear resize, OpenCV's bicubic resize.
pub mod pixels {
    pub use crate::cubic::resize_cubic_opencv;
    pub use crate::decode::{DecodeError, Gray16, MAX_PIXELS, RgbImage, decode_rgb8};
    pub use crate::preprocess::{IMAGENET_MEAN, IMAGENET_STD, load_rgb8};
    pub use crate::resize::{Interpolation, resize_bilinear_pillow, resize_pillow};
}

/// Which files an analysis reads: files given by name, and the image files of a folder
/// (sorted by name, recognised by content).
pub mod files {
    pub use crate::inputs::{
        MAX_IMAGE_FILE_BYTES, MAX_JSON_BYTES, expand_inputs, image_files, looks_like_image,
        read_limited,
    };
}

/// The rules the analyses share: the ranking order, the original's class selection and sum,
/// and the separability figure.
pub mod stats {
    pub use crate::ablation::draw_set;
    pub use crate::class_sums::{roc_auc, sum_f32};
    pub use crate::rank::select_unique;
    pub use crate::topk::top_n;
}
