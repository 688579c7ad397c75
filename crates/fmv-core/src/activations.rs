//! One image, all maps: each channel's mean activation and the most active channels (the data
//! of the original's `one_image_N_top_feature_maps`).

use std::path::PathBuf;

use fmv_models::LayerRef;

use crate::error::{Error, Result};
use crate::topk::top_n;
use crate::visualizer::{Event, Visualizer};

/// What [`Visualizer::activations`] computes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivationsConfig {
    layer: LayerRef,
    top: usize,
}

impl ActivationsConfig {
    /// Activations of `layer`.
    pub fn new(layer: LayerRef) -> Self {
        ActivationsConfig { layer, top: 25 }
    }

    /// Lists this many most active channels per image (all of them if the layer has fewer).
    /// By default, 25 (the original's `n_each_img`).
    pub fn with_top(mut self, top: usize) -> Self {
        self.top = top;
        self
    }

    /// The layer.
    pub fn layer(&self) -> &LayerRef {
        &self.layer
    }

    /// The number of top channels.
    pub fn top(&self) -> usize {
        self.top
    }
}

/// One image's activations.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ImageActivations {
    /// The image file.
    pub path: PathBuf,
    /// Each channel's spatial mean (for `logits`, the logits).
    pub mean: Vec<f32>,
    /// The most active channels, most active first; ties go to the lower channel index.
    pub top: Vec<usize>,
}

/// The activations of several images at one layer.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Activations {
    /// The layer's name (`layer4.1`; compat integers are resolved).
    pub layer: String,
    /// The preprocessing, as [`crate::Preprocess::name`].
    pub preprocess: String,
    /// One entry per image, in the order given.
    pub images: Vec<ImageActivations>,
}

impl Visualizer {
    /// Each channel's mean activation at one layer, and the top channels, for each image, in
    /// the order given; images go through the network in batches.
    pub fn activations(
        &self,
        images: &[PathBuf],
        config: &ActivationsConfig,
        on_event: &mut dyn FnMut(&Event),
    ) -> Result<Activations> {
        let layer = self.resolve(config.layer())?;
        if config.top() == 0 {
            return Err(Error::InvalidArgument {
                name: "--top",
                reason: "must be at least 1".into(),
            });
        }
        if images.is_empty() {
            return Err(Error::NoImages {
                reason: "no image was given".into(),
            });
        }
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(self.batch_size()) {
            let inputs = self
                .load_inputs(chunk)
                .into_iter()
                .collect::<Result<Vec<_>>>()?;
            let refs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
            for (path, mean) in chunk.iter().zip(self.channel_means(&refs, layer)?) {
                self.check_finite(&mean, layer, path)?;
                out.push(ImageActivations {
                    path: path.clone(),
                    top: top_n(&mean, config.top()),
                    mean,
                });
            }
            on_event(&Event::Progress {
                done: out.len(),
                total: images.len(),
            });
        }
        Ok(Activations {
            layer: self.backbone().layer(layer).name.clone(),
            preprocess: self.preprocess().name(),
            images: out,
        })
    }
}
