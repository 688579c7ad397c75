//! fmv's report as a library: every analysis of one layer, run on a network and two image
//! folders, returned as one static HTML page with its images, every number it shows and a
//! manifest of how it was made.
//!
//! The principal function is [`report`]: given a [`Visualizer`], the training and test
//! [`Folders`] and a [`ReportConfig`], it ranks the maps per class, draws the patterns of each
//! class's top maps, the top maps of sample test images, each class's maps over its own test
//! images and the others', and the class sums, and returns a [`Report`]. Nothing is written to
//! disk: the caller saves [`Report::files`] (the page, `results.json`, `manifest.json` and the
//! images, at paths relative to the report's folder), as `fmv report` does atomically.
//!
//! [`draw`] holds the adapters from results to pictures (and the original's mask rule) that
//! the report, `fmv overlay` and the examples share; [`documents`] the JSON documents the CLI
//! and the report write; [`demo`] the embedded demo's images and settings.
//!
//! ```no_run
//! use fmv_core::{ImageFolder, Visualizer};
//! use fmv_models::{LoadOptions, Model};
//! use fmv_report::{Folders, ReportConfig, report};
//! let viz = Visualizer::new(Model::load("resnet50.safetensors", &LoadOptions::new())?);
//! let train = ImageFolder::open("train", None)?;
//! let test = ImageFolder::open("test", None)?;
//! let config = ReportConfig::new("layer4.1".parse()?);
//! let report = report(&viz, Folders { train: &train, test: &test }, &config, &mut ())?;
//! for file in report.files()? {
//!     let path = std::path::Path::new("out").join(&file.path);
//!     std::fs::create_dir_all(path.parent().unwrap())?;
//!     std::fs::write(path, &file.bytes)?;
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(clippy::print_stdout, clippy::print_stderr)]

mod config;
pub mod demo;
pub mod documents;
pub mod draw;
mod error;
mod figures;
mod html;
mod pipeline;
mod results;

use fmv_core::{Event, ImageFolder, Visualizer};

pub use config::{ReportConfig, ReportField, Style};
pub use error::{Error, Result};
pub use figures::{ExemplarPictures, exemplar_pictures};
pub use results::{
    AlgorithmsDocument, ExemplarGridDocument, Manifest, MapsRowDocument, Parameters,
    PatternsDocument, Results, ShownImage, ShownPattern, Timing, TopMapsDocument, WeightsDocument,
};

/// The image folders a report runs on: the classes must be the same in both.
#[derive(Debug, Clone, Copy)]
pub struct Folders<'a> {
    /// The training folder, which the maps are ranked on.
    pub train: &'a ImageFolder,
    /// The test folder, for the pictures and the class sums.
    pub test: &'a ImageFolder,
}

/// A file of a report, at its path relative to the report's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFile {
    /// The path relative to the report's folder (`patterns/cat_3.png`), with `/` separators.
    pub path: String,
    /// The file's contents.
    pub bytes: Vec<u8>,
}

/// A finished report.
#[derive(Debug, Clone)]
pub struct Report {
    /// The page, `index.html`: static and self-contained (inline CSS, relative links, no
    /// script).
    pub html: String,
    /// Every number the page shows, `results.json`.
    pub results: Results,
    /// How the report was made, `manifest.json`.
    pub manifest: Manifest,
    /// The images (and SVG plots) the page links to.
    pub images: Vec<ReportFile>,
}

impl Report {
    /// Every file of the report: the images, `results.json`, `manifest.json` and, last,
    /// `index.html`.
    pub fn files(&self) -> Result<Vec<ReportFile>> {
        let mut files = self.images.clone();
        files.push(ReportFile {
            path: "results.json".into(),
            bytes: pretty_json(&self.results)?,
        });
        files.push(ReportFile {
            path: "manifest.json".into(),
            bytes: pretty_json(&self.manifest)?,
        });
        files.push(ReportFile {
            path: "index.html".into(),
            bytes: self.html.clone().into_bytes(),
        });
        Ok(files)
    }
}

/// A document as pretty JSON, with a final newline.
fn pretty_json(value: &impl serde::Serialize) -> Result<Vec<u8>> {
    let mut text = serde_json::to_vec_pretty(value)?;
    text.push(b'\n');
    Ok(text)
}

/// What a report tells its caller while it runs.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ReportEvent<'a> {
    /// Stage `index` (from 1) of `count` starts.
    Stage {
        /// The stage's number, from 1.
        index: usize,
        /// The number of stages.
        count: usize,
        /// What it does.
        name: &'static str,
    },
    /// The patterns of one class start.
    Patterns {
        /// The class's number, from 1.
        index: usize,
        /// The number of classes.
        count: usize,
        /// The class.
        class: &'a str,
        /// Its maps whose patterns are drawn.
        maps: &'a [usize],
    },
    /// An event of the analysis the stage runs (progress, a skipped file, a step).
    Analysis(&'a Event<'a>),
}

/// Receives a report's [`ReportEvent`]s and decides when it stops; `()` observes nothing, and
/// a closure taking `&ReportEvent` observes every event.
pub trait ReportObserver {
    /// Called with every event.
    fn on_event(&mut self, event: &ReportEvent<'_>) {
        let _ = event;
    }

    /// Whether the report should stop as soon as it can ([`fmv_core::Error::Stopped`]). By
    /// default, never.
    fn should_stop(&mut self) -> bool {
        false
    }
}

impl ReportObserver for () {}

impl<F: FnMut(&ReportEvent<'_>)> ReportObserver for F {
    fn on_event(&mut self, event: &ReportEvent<'_>) {
        self(event)
    }
}

/// Runs every stage of the report on `folders` and returns the page, its numbers, its
/// manifest and its images; see the crate's documentation.
///
/// Stopped, it returns [`fmv_core::Error::Stopped`] after the analysis at hand.
pub fn report(
    viz: &Visualizer,
    folders: Folders<'_>,
    config: &ReportConfig,
    observer: &mut (impl ReportObserver + ?Sized),
) -> Result<Report> {
    let mut observer = pipeline::Wrapped(observer);
    pipeline::run(viz, folders, config, &mut observer)
}
