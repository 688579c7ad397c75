//! [`Visualizer`]: a network plus preprocessing, reused for every analysis.

use std::path::Path;
use std::sync::Arc;

use candle_core::Tensor;
use fmv_models::{Backbone, LayerId, LayerRef};

use crate::error::{Error, Result};
use crate::preprocess::Preprocess;

/// A network and how its inputs are prepared; create it once and run every analysis on it.
///
/// Every analysis has one shape: `viz.analysis(inputs, &AnalysisConfig, &mut observer)`,
/// returning its result as plain data. The observer ([`crate::Observer`]) receives progress
/// and skipped files, and can stop the run; `&mut ()` observes nothing.
///
/// ```no_run
/// use fmv_core::{Preprocess, Visualizer};
/// use fmv_models::{LoadOptions, Model};
/// let model = Model::load("resnet50.safetensors", &LoadOptions::new())?;
/// let viz = Visualizer::new(model).with_preprocess(Preprocess::original()).with_batch_size(8);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Visualizer {
    model: Arc<dyn Backbone>,
    preprocess: Preprocess,
    batch_size: usize,
}

impl std::fmt::Debug for Visualizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Visualizer")
            .field("arch", &self.model.arch_name())
            .field("preprocess", &self.preprocess.name())
            .field("batch_size", &self.batch_size)
            .finish()
    }
}

impl Visualizer {
    /// The batch size used when none is given: 8 on the CPU (larger batches gain nothing
    /// there), 32 on a GPU.
    pub fn default_batch_size(device: &candle_core::Device) -> usize {
        if device.is_cpu() { 8 } else { 32 }
    }

    /// Wraps a network, with [`Preprocess::imagenet`] and the device's default batch size.
    pub fn new(model: impl Backbone + 'static) -> Self {
        Self::from_shared(Arc::new(model))
    }

    /// Wraps a network already shared elsewhere.
    pub fn from_shared(model: Arc<dyn Backbone>) -> Self {
        let batch_size = Self::default_batch_size(model.device());
        Visualizer {
            model,
            preprocess: Preprocess::imagenet(),
            batch_size,
        }
    }

    /// Prepares inputs this way. By default, [`Preprocess::imagenet`].
    pub fn with_preprocess(mut self, preprocess: Preprocess) -> Self {
        self.preprocess = preprocess;
        self
    }

    /// Runs the network on this many images at once (at least 1). By default,
    /// [`Visualizer::default_batch_size`] of the model's device. Results do not depend on it.
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// The network.
    pub fn backbone(&self) -> &dyn Backbone {
        &*self.model
    }

    /// The preprocessing.
    pub fn preprocess(&self) -> &Preprocess {
        &self.preprocess
    }

    /// The batch size.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Resolves a layer, with the network's error (listing the valid names) if unknown.
    pub fn resolve(&self, layer: &LayerRef) -> Result<LayerId> {
        Ok(self.model.resolve(layer)?)
    }

    /// Checks that `channel` exists in `layer`.
    pub fn check_channel(&self, layer: LayerId, channel: usize) -> Result<()> {
        let info = self.model.layer(layer);
        if channel >= info.channels {
            return Err(Error::ChannelOutOfRange {
                channel,
                layer: info.name.clone(),
                channels: info.channels,
            });
        }
        Ok(())
    }

    /// Stacks preprocessed images into one `N×3×H×W` tensor on the model's device.
    pub fn batch_tensor(&self, inputs: &[&[f32]]) -> Result<Tensor> {
        let (w, h) = self.preprocess.size();
        let mut data = Vec::with_capacity(inputs.len() * 3 * w * h);
        for x in inputs {
            data.extend_from_slice(x);
        }
        let t = Tensor::from_vec(data, (inputs.len(), 3, h, w), self.model.device())?;
        Ok(t.to_dtype(self.model.dtype())?)
    }

    /// Fails if any value is NaN or infinite, naming the layer and the image.
    pub(crate) fn check_finite(&self, values: &[f32], layer: LayerId, path: &Path) -> Result<()> {
        if values.iter().all(|v| v.is_finite()) {
            Ok(())
        } else {
            Err(Error::NonFinite {
                layer: self.model.layer(layer).name.clone(),
                path: path.to_path_buf(),
            })
        }
    }
}
