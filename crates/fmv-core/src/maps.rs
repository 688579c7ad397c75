//! One map or several maps summed, over many images (the data of the original's
//! `one_feature_map_N_images` and `M_feature_maps_N_images`).

use std::path::{Path, PathBuf};

use fmv_models::LayerRef;

use crate::decode::RgbImage;
use crate::error::{Error, Result};
use crate::inputs::Skipped;
use crate::rank::strict_error;
use crate::stream::{Item, StreamSpec};
use crate::visualizer::{Event, Visualizer};

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

    /// The channels.
    pub fn filters(&self) -> &[usize] {
        &self.filters
    }
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
    /// Streams the maps of some filters over images: `on_image` receives each image's maps in
    /// file order (write it out and drop it: memory stays flat). Returns the files skipped.
    pub fn filter_maps(
        &self,
        images: &[PathBuf],
        config: &FilterMapsConfig,
        on_image: &mut dyn FnMut(ImageMaps) -> Result<()>,
        on_event: &mut dyn FnMut(&Event),
    ) -> Result<Vec<Skipped>> {
        let layer = self.resolve(&config.layer)?;
        if config.filters.is_empty() {
            return Err(Error::InvalidArgument {
                name: "--filters",
                reason: "give at least one channel".into(),
            });
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
        let mut on_item = |path: &Path, item: Item| -> Result<()> {
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
                    on_image(ImageMaps {
                        path: path.to_path_buf(),
                        mean,
                        maps: o.maps,
                        width: o.map_size.1,
                        height: o.map_size.0,
                        input: o
                            .resized
                            .expect("the stream keeps the resized input when asked"),
                    })
                }
                Item::Failed { skipped: s, .. } => {
                    if config.strict {
                        return Err(strict_error(&s));
                    }
                    skipped.push(s);
                    Ok(())
                }
            }
        };
        self.stream(
            images,
            layer,
            &spec,
            (0, images.len()),
            &mut on_item,
            on_event,
        )?;
        Ok(skipped)
    }
}
