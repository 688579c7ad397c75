//! The embedded demo's report, as `fmv report` runs it without arguments: the generated
//! images, the preprocessing the demo networks were trained with, and the settings that suit
//! them.
//!
//! ```no_run
//! use fmv_core::{ImageFolder, Visualizer};
//! use fmv_models::LoadOptions;
//! use fmv_models::demo::DemoNet;
//! use fmv_report::{Folders, demo, report};
//! let (train, test) = demo::write_folders(std::path::Path::new("out/data"))?;
//! let viz = Visualizer::new(DemoNet::ResNet.load(&LoadOptions::new())?)
//!     .with_preprocess(demo::preprocess());
//! let (train, test) = (ImageFolder::open(train, None)?, ImageFolder::open(test, None)?);
//! let folders = Folders { train: &train, test: &test };
//! let report = report(&viz, folders, &demo::config(DemoNet::ResNet), &mut ())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::{Path, PathBuf};

use fmv_core::Preprocess;
use fmv_core::demo::{DEMO_SIZE, write_image_folder};
use fmv_models::demo::DemoNet;

use crate::{ReportConfig, Result};

/// Seed of the demo's training images.
pub const TRAIN_SEED: u64 = 1 << 32;
/// Seed of the demo's test images (disjoint from the training run's and the trainer's).
pub const TEST_SEED: u64 = 1 << 33;
/// Training images per class.
pub const TRAIN_PER_CLASS: usize = 24;
/// Test images per class.
pub const TEST_PER_CLASS: usize = 6;

/// Writes the demo's training and test ImageFolders under `data` (`data/train`, `data/test`)
/// and returns their paths.
pub fn write_folders(data: &Path) -> Result<(PathBuf, PathBuf)> {
    let (train, test) = (data.join("train"), data.join("test"));
    write_image_folder(&train, TRAIN_PER_CLASS, TRAIN_SEED)?;
    write_image_folder(&test, TEST_PER_CLASS, TEST_SEED)?;
    Ok((train, test))
}

/// The preprocessing the demo networks were trained with: the original's, at 96×96.
pub fn preprocess() -> Preprocess {
    Preprocess::original().with_size(DEMO_SIZE, DEMO_SIZE)
}

/// The demo report's settings: the network's own layer, rankings of 8 maps per image and per
/// class (its layers have 64 channels), 128-step patterns, and the page's note that the data
/// are generated.
pub fn config(net: DemoNet) -> ReportConfig {
    ReportConfig::new(net.layer())
        .with_n_each_img(8)
        .with_n_each_class(8)
        .with_pattern_steps(128)
        .with_labels(
            fmv_core::demo::DemoClass::ALL
                .iter()
                .map(|c| c.name().to_string())
                .collect(),
        )
        .with_demo(true)
}
