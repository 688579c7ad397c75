//! Feature-map analysis for CNN image classifiers, without any rendering dependency.
//!
//! The principal type is [`Visualizer`]: a network ([`fmv_models::Backbone`]) plus the way
//! images become its inputs ([`Preprocess`]). Every analysis is a method on it and returns
//! plain data (no tensors):
//!
//! - [`Visualizer::rank`]: per class of a training [`ImageFolder`], the maps most often among
//!   each image's most active maps, minus those other classes share (shardable and resumable
//!   through [`RankCounts`]);
//! - [`Visualizer::activations`]: each channel's mean activation and the most active channels
//!   (and their maps) of each image;
//! - [`Visualizer::filter_maps`]: one or several maps over many images, streamed;
//! - [`Visualizer::class_sums`]: per test image, the summed activation of each class's maps,
//!   with a separability figure per class.
//!
//! Preprocessing reproduces FeatureMapVisualizer's (Pillow's decode, `convert('RGB')` and
//! antialiased bilinear resize) bit for bit with [`Preprocess::original`]; the default,
//! [`Preprocess::imagenet`], adds the normalisation pretrained weights expect.
//!
//! ```
//! use fmv_core::{top_n, Preprocess, RgbImage};
//! let img = RgbImage { width: 2, height: 2, pixels: vec![255; 12] };
//! let x = Preprocess::original().apply(&img); // 3×224×224, all 1.0
//! assert_eq!(x.len(), 3 * 224 * 224);
//! assert!(x.iter().all(|&v| v == 1.0));
//! assert_eq!(top_n(&[0.1f32, 0.9, 0.5], 2), vec![1, 2]);
//! ```

#![deny(clippy::print_stdout, clippy::print_stderr)]

mod activations;
mod alloc;
mod class_sums;
mod cubic;
mod dataset;
mod decode;
pub mod demo;
mod error;
mod inputs;
mod lanes;
mod lists;
mod maps;
mod memory;
mod patterns;
mod preprocess;
mod rank;
mod relay;
mod resize;
mod rng;
mod stream;
mod topk;
mod visualizer;

pub use activations::{Activations, ActivationsConfig, ChannelMap, ImageActivations};
pub use alloc::{disable_candle_thread_pool, tune_glibc_malloc};
pub use class_sums::{ClassSums, TestClassSums, roc_auc, sum_f32};
pub use cubic::resize_cubic_opencv;
pub use dataset::{ClassFolder, ImageFolder};
pub use decode::{DecodeError, Gray16, MAX_PIXELS, RgbImage, decode_rgb8};
pub use error::{Error, Result};
pub use inputs::{Skipped, expand_inputs, looks_like_image, sorted_files};
pub use maps::{FilterMapsConfig, ImageMaps};
pub use patterns::{Mode, Objective, Pattern, PatternConfig};
pub use preprocess::{IMAGENET_MEAN, IMAGENET_STD, Preprocess, load_rgb8};
pub use rank::{
    ClassCounts, ClassRanking, RANK_COUNTS_VERSION, RankConfig, RankCounts, Ranking, Shard,
    select_unique,
};
pub use resize::resize_bilinear_pillow;
pub use rng::Rng;
pub use topk::top_n;
pub use visualizer::{Event, Visualizer, default_batch_size};
