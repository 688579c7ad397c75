//! One image, all maps: each channel's mean activation, the most active channels, and
//! optionally their maps (the data of the original's `one_image_N_top_feature_maps`).

use std::path::PathBuf;

use fmv_models::LayerRef;

use crate::decode::RgbImage;
use crate::error::{Error, Field, Problem, Result};
use crate::observer::{Dyn, Observer};
use crate::stream::{Item, StreamSpec};
use crate::topk::top_n;
use crate::visualizer::Visualizer;

/// What [`Visualizer::activations`] computes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivationsConfig {
    layer: LayerRef,
    top: usize,
    with_maps: bool,
}

impl ActivationsConfig {
    /// Activations of `layer`.
    pub fn new(layer: LayerRef) -> Self {
        ActivationsConfig {
            layer,
            top: 25,
            with_maps: false,
        }
    }

    /// Lists this many most active channels per image (all of them if the layer has fewer).
    /// By default, 25 (the original's `n_each_img`).
    pub fn with_top(mut self, top: usize) -> Self {
        self.top = top;
        self
    }

    /// Also returns the maps of the top channels and the preprocessed image, for drawing. By
    /// default, off.
    pub fn with_maps(mut self, with_maps: bool) -> Self {
        self.with_maps = with_maps;
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

/// One feature map.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ChannelMap {
    /// The channel.
    pub channel: usize,
    /// Width of the map.
    pub width: usize,
    /// Height of the map.
    pub height: usize,
    /// `height · width` activations, row-major.
    pub values: Vec<f32>,
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
    /// The maps of the `top` channels, in the same order (only with
    /// [`ActivationsConfig::with_maps`]).
    pub maps: Vec<ChannelMap>,
    /// The image as the network saw it, before normalisation (only with `with_maps`).
    pub input: Option<RgbImage>,
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
    /// the order given. Every file must be a readable image. Stopped, it returns
    /// [`Error::Stopped`].
    ///
    /// ```no_run
    /// use fmv_core::{ActivationsConfig, Visualizer};
    /// use fmv_models::{LoadOptions, Model};
    /// let viz = Visualizer::new(Model::load("resnet50.safetensors", &LoadOptions::new())?);
    /// let cfg = ActivationsConfig::new("layer4.1".parse()?).with_top(5);
    /// let acts = viz.activations(&["cat.jpg".into()], &cfg, &mut ())?;
    /// println!("most active maps: {:?}", acts.images[0].top);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn activations(
        &self,
        images: &[PathBuf],
        config: &ActivationsConfig,
        observer: &mut (impl Observer + ?Sized),
    ) -> Result<Activations> {
        let layer = self.resolve(config.layer())?;
        if config.top() == 0 {
            return Err(Error::invalid(Field::Top, Problem::Zero));
        }
        if images.is_empty() {
            return Err(Error::NoImages {
                reason: "no image was given".into(),
            });
        }
        let spec = StreamSpec {
            top_maps: if config.with_maps { config.top() } else { 0 },
            keep_resized: config.with_maps,
            ..StreamSpec::default()
        };
        let mut out = Vec::with_capacity(images.len());
        let mut on_item = |path: &std::path::Path, item: Item, _: &mut dyn Observer| match item {
            Item::Image(o) => {
                let (height, width) = o.map_size;
                out.push(ImageActivations {
                    path: path.to_path_buf(),
                    top: top_n(&o.means, config.top()),
                    mean: o.means,
                    maps: o
                        .top_maps
                        .into_iter()
                        .map(|(channel, values)| ChannelMap {
                            channel,
                            width,
                            height,
                            values,
                        })
                        .collect(),
                    input: o.resized,
                });
                Ok(())
            }
            Item::Failed { error, .. } => Err(error),
        };
        self.stream(
            images,
            layer,
            &spec,
            (0, images.len()),
            &mut on_item,
            &mut Dyn(observer),
        )?;
        Ok(Activations {
            layer: self.backbone().layer(layer).name.clone(),
            preprocess: self.preprocess().name(),
            images: out,
        })
    }
}
