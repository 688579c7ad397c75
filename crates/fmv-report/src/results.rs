//! What a report records: every number it shows ([`Results`], `results.json`) and how it was
//! made ([`Manifest`], `manifest.json`), as typed documents.

use serde::{Deserialize, Serialize};

use crate::documents::{AblationDocument, ClassSumsDocument, ExemplarsDocument, RankDocument};

/// Every number the report shows: `results.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// The ranking (the shape of `fmv rank --json`).
    pub rank: RankDocument,
    /// The patterns drawn.
    pub patterns: PatternsDocument,
    /// The sample images' top maps.
    pub top_maps: Vec<TopMapsDocument>,
    /// Each class's top map over test images.
    pub one_map: Vec<MapsRowDocument>,
    /// Each class's unique maps summed over test images.
    pub summed_maps: Vec<MapsRowDocument>,
    /// The class sums (the shape of `fmv class-sums --json`).
    pub class_sums: ClassSumsDocument,
    /// The exemplars of each class's maps (the shape of `fmv exemplars --json`).
    pub exemplars: ExemplarsDocument,
    /// The exemplars' grids shown.
    pub exemplar_grids: Vec<ExemplarGridDocument>,
    /// The ablation of each class's unique maps (the shape of `fmv ablate --json --each`);
    /// null for a network without a classifier.
    pub ablation: Option<AblationDocument>,
}

/// One map's exemplars as the report shows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExemplarGridDocument {
    /// The class whose unique map this is.
    pub class: String,
    /// The map.
    pub filter: usize,
    /// The grid, relative to the report's folder.
    pub grid: String,
}

/// The patterns section's numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatternsDocument {
    /// `robust` or `compat`.
    pub mode: String,
    /// The seed.
    pub seed: u64,
    /// Robust mode's optimisation steps.
    pub steps: usize,
    /// Every pattern drawn, by class.
    pub maps: Vec<ShownPattern>,
}

/// A pattern as the report shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShownPattern {
    /// The class whose top map this is.
    pub class: String,
    /// The map.
    pub filter: usize,
    /// The activation the pattern reaches.
    pub final_activation: f64,
    /// The optimisation steps taken (a robust run stops a map on a plateau).
    #[serde(default)]
    pub steps: usize,
    /// The image file, relative to the report's folder.
    pub file: String,
}

/// One sample image's top maps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopMapsDocument {
    /// The image's class.
    pub class: String,
    /// The image's file name.
    pub image: String,
    /// Its most active maps, most active first.
    pub top: Vec<usize>,
    /// Their mean activations (f32 values, written as f64).
    pub top_means: Vec<f64>,
    /// The grid of overlays, relative to the report's folder.
    pub grid: String,
    /// The plot of every map's mean activation.
    pub plot: String,
    /// What the network predicts for the image, where it has a classifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted: Option<Prediction>,
}

/// The classifier's output for one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// The index of the largest logit.
    pub index: usize,
    /// Its name (`--labels`, or `class N`).
    pub label: String,
    /// Every logit (f32 values, written as f64).
    pub logits: Vec<f64>,
}

/// Some maps of one class over test images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MapsRowDocument {
    /// The class whose maps these are.
    pub class: String,
    /// The maps (summed when several).
    pub maps: Vec<usize>,
    /// The grid, relative to the report's folder.
    pub grid: String,
    /// Every image shown.
    pub images: Vec<ShownImage>,
}

/// An image of a maps row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShownImage {
    /// Its true class.
    pub class: String,
    /// Its file.
    pub image: String,
    /// The maps' mean activation on it (an f32 value, written as f64).
    pub mean: f64,
}

/// How the report was made: `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The version of fmv that made it.
    pub fmv_version: String,
    /// The network's weights.
    pub weights: WeightsDocument,
    /// The layer's name.
    pub layer: String,
    /// The preprocessing's name.
    pub preprocess: String,
    /// The input's width and height.
    pub input_size: (usize, usize),
    /// The device (`Cpu`, `Cuda(..)`).
    pub device: String,
    /// The algorithms the network's layers ran.
    pub algorithms: AlgorithmsDocument,
    /// The training folder.
    pub train_dir: String,
    /// The test folder.
    pub test_dir: String,
    /// Whether this is the embedded demo.
    pub demo: bool,
    /// The report's settings.
    pub parameters: Parameters,
    /// Each stage's wall-clock time.
    pub timings_s: Vec<Timing>,
    /// The whole run's wall-clock time.
    pub total_s: f64,
}

/// Where the weights came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightsDocument {
    /// The file as given (or the label of weights held in memory).
    pub file: String,
    /// Its sha256.
    pub sha256: String,
    /// The architecture (`resnet50`, `vgg16_bn`).
    pub arch: String,
}

/// The algorithms the layers ran (they round differently).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlgorithmsDocument {
    /// The convolution's (`winograd`, `gemm`, `candle`, ...).
    pub conv: String,
    /// The input gradient's, where fmv's CPU convolution does not run.
    pub input_grad: String,
    /// On a GPU, the kernels candle's convolution ran there (`cudnn`, `im2col+cublas`,
    /// `metal`: [`fmv_models::gpu_convolution`]); absent on the CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_conv: Option<String>,
}

/// The report's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parameters {
    /// Ranking: the per-image cut-off.
    pub n_each_img: usize,
    /// Ranking: the per-class cut-off.
    pub n_each_class: usize,
    /// Maps per class shown.
    pub maps_per_class: usize,
    /// Sample images per class.
    pub samples_per_class: usize,
    /// Maps per sample image.
    pub top: usize,
    /// Images per class in the grids.
    pub images_per_class: usize,
    /// `robust` or `compat`.
    pub pattern_mode: String,
    /// Robust mode's steps.
    pub pattern_steps: usize,
    /// The patterns' seed.
    pub seed: u64,
    /// `heatmap` or `original`.
    pub style: String,
    /// Images per forward pass.
    pub batch_size: usize,
}

/// One stage's time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// The stage.
    pub stage: String,
    /// Its wall-clock seconds.
    pub seconds: f64,
}
