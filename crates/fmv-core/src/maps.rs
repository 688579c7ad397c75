//! One map or several maps summed, over many images (the data of the original's
//! `one_feature_map_N_images` and `M_feature_maps_N_images`).

use std::path::{Path, PathBuf};

use fmv_models::LayerRef;

use crate::decode::RgbImage;
use crate::error::{Error, Field, Problem, Result};
use crate::inputs::Skipped;
use crate::inputs::skip;
use crate::observer::{Dyn, Event, Observer};
use crate::stream::{Item, StreamSpec};
use crate::visualizer::Visualizer;

/// What [`Visualizer::filter_maps`] computes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterMapsConfig {
    layer: LayerRef,
    filters: Vec<usize>,
    strict: bool,
}

impl FilterMapsConfig {
    /// The maps of `filters` (one or more channels) of `layer`.
    pub fn new(layer: LayerRef, filters: Vec<usize>) -> Self {
        FilterMapsConfig {
            layer,
            filters,
            strict: false,
        }
    }

    /// Fails on the first file that cannot be used instead of skipping it. By default, off.
    pub fn with_strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// The layer.
    pub fn layer(&self) -> &LayerRef {
        &self.layer
    }

    /// The channels.
    pub fn filters(&self) -> &[usize] {
        &self.filters
    }
}

/// What [`Visualizer::filter_maps`] returns once every image's maps went to the observer.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct FilterMaps {
    /// The layer's name.
    pub layer: String,
    /// The channels.
    pub filters: Vec<usize>,
    /// Images whose maps were sent ([`Event::Maps`]).
    pub n_images: usize,
    /// Files left out, with the reason.
    pub skipped: Vec<Skipped>,
}

/// One image's maps.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageMaps {
    /// The image file.
    pub path: PathBuf,
    /// The sum over the filters of each map's spatial mean (for one filter, its mean
    /// activation, as the original's viz 3 returns it).
    pub mean: f32,
    /// Each filter's map, `height · width` values, row-major, in filter order.
    pub maps: Vec<Vec<f32>>,
    /// Width of the maps.
    pub width: usize,
    /// Height of the maps.
    pub height: usize,
    /// The image as the network saw it (resized, before normalisation).
    pub input: RgbImage,
}

impl Visualizer {
    /// Streams the maps of some filters over images: the observer receives each image's maps
    /// as [`Event::Maps`], in file order (draw or save them there and let them go: memory stays
    /// flat however many images there are). Stopped, it returns [`Error::Stopped`] after the
    /// images of the batch at hand.
    ///
    /// ```no_run
    /// use fmv_core::{Event, FilterMapsConfig, Visualizer};
    /// use fmv_models::{LoadOptions, Model};
    /// let viz = Visualizer::new(Model::load("resnet50.safetensors", &LoadOptions::new())?);
    /// let cfg = FilterMapsConfig::new("layer4.1".parse()?, vec![113]);
    /// let images = ["cat.jpg".into(), "dog.jpg".into()];
    /// viz.filter_maps(&images, &cfg, &mut |e: &Event| {
    ///     if let Event::Maps(m) = e {
    ///         println!("{}: mean {}", m.path.display(), m.mean);
    ///     }
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn filter_maps(
        &self,
        images: &[PathBuf],
        config: &FilterMapsConfig,
        observer: &mut (impl Observer + ?Sized),
    ) -> Result<FilterMaps> {
        let layer = self.resolve(&config.layer)?;
        if config.filters.is_empty() {
            return Err(Error::invalid(Field::Filters, Problem::NoChannels));
        }
        for &f in &config.filters {
            self.check_channel(layer, f)?;
        }
        let spec = StreamSpec {
            map_channels: config.filters.clone(),
            keep_resized: true,
            ..StreamSpec::default()
        };
        let mut skipped = Vec::new();
        let mut n_images = 0;
        let mut on_item = |path: &Path, item: Item, observer: &mut dyn Observer| -> Result<()> {
            match item {
                Item::Image(o) => {
                    let mean = if config.filters.len() == 1 {
                        o.means[config.filters[0]]
                    } else {
                        config
                            .filters
                            .iter()
                            .map(|&f| o.means[f] as f64)
                            .sum::<f64>() as f32
                    };
                    let maps = ImageMaps {
                        path: path.to_path_buf(),
                        mean,
                        maps: o.maps,
                        width: o.map_size.1,
                        height: o.map_size.0,
                        input: o
                            .resized
                            .expect("the stream keeps the resized input when asked"),
                    };
                    observer.on_event(&Event::Maps(&maps));
                    n_images += 1;
                }
                Item::Failed { skipped: s, .. } => skip(s, config.strict, observer, &mut skipped)?,
            }
            Ok(())
        };
        self.stream(
            images,
            layer,
            &spec,
            (0, images.len()),
            &mut on_item,
            &mut Dyn(observer),
        )?;
        Ok(FilterMaps {
            layer: self.backbone().layer(layer).name.clone(),
            filters: config.filters.clone(),
            n_images,
            skipped,
        })
    }
}
