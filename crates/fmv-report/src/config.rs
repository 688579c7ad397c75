//! What a report shows and how: [`ReportConfig`].

use fmv_core::Mode;
use fmv_models::LayerRef;

/// How maps are drawn over images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Style {
    /// A viridis heat map over the image, with a colour bar. The default.
    #[default]
    Heatmap,
    /// The original package's grey mask ([`crate::draw::original_overlay`]).
    Original,
}

impl Style {
    /// `heatmap` or `original`.
    pub fn as_str(self) -> &'static str {
        match self {
            Style::Heatmap => "heatmap",
            Style::Original => "original",
        }
    }
}

/// A count of [`ReportConfig`] that must be at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReportField {
    /// [`ReportConfig::with_maps_per_class`].
    MapsPerClass,
    /// [`ReportConfig::with_samples_per_class`].
    SamplesPerClass,
    /// [`ReportConfig::with_top`].
    Top,
    /// [`ReportConfig::with_images_per_class`].
    ImagesPerClass,
}

impl ReportField {
    /// The setting's name in this library.
    pub fn name(self) -> &'static str {
        match self {
            ReportField::MapsPerClass => "maps_per_class",
            ReportField::SamplesPerClass => "samples_per_class",
            ReportField::Top => "top",
            ReportField::ImagesPerClass => "images_per_class",
        }
    }
}

impl std::fmt::Display for ReportField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What [`crate::report`] shows: the layer in [`ReportConfig::new`], the rest through `with_*`.
///
/// ```
/// use fmv_report::{ReportConfig, Style};
/// let cfg = ReportConfig::new("layer4.1".parse().unwrap())
///     .with_maps_per_class(3)
///     .with_style(Style::Original);
/// assert_eq!(cfg.maps_per_class(), 3);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ReportConfig {
    pub(crate) layer: LayerRef,
    pub(crate) n_each_img: usize,
    pub(crate) n_each_class: usize,
    pub(crate) maps_per_class: usize,
    pub(crate) samples_per_class: usize,
    pub(crate) top: usize,
    pub(crate) images_per_class: usize,
    pub(crate) pattern_mode: Mode,
    pub(crate) pattern_steps: usize,
    pub(crate) seed: u64,
    pub(crate) style: Style,
    pub(crate) svg: bool,
    pub(crate) demo: bool,
    pub(crate) labels: Option<Vec<String>>,
}

impl ReportConfig {
    /// A report on `layer`.
    pub fn new(layer: LayerRef) -> Self {
        ReportConfig {
            layer,
            n_each_img: 25,
            n_each_class: 25,
            maps_per_class: 2,
            samples_per_class: 1,
            top: 6,
            images_per_class: 3,
            pattern_mode: Mode::Robust,
            pattern_steps: 256,
            seed: 0,
            style: Style::Heatmap,
            svg: false,
            demo: false,
            labels: None,
        }
    }

    /// Reports on `layer` instead.
    pub fn with_layer(mut self, layer: LayerRef) -> Self {
        self.layer = layer;
        self
    }

    /// Ranking: the top maps counted per image. By default, 25.
    pub fn with_n_each_img(mut self, n: usize) -> Self {
        self.n_each_img = n;
        self
    }

    /// Ranking: the most frequent maps kept per class before shared ones are removed. By
    /// default, 25.
    pub fn with_n_each_class(mut self, n: usize) -> Self {
        self.n_each_class = n;
        self
    }

    /// Maps per class shown as patterns and overlays (its most frequent unique maps). By
    /// default, 2.
    pub fn with_maps_per_class(mut self, n: usize) -> Self {
        self.maps_per_class = n;
        self
    }

    /// Test images per class in the top-maps section. By default, 1.
    pub fn with_samples_per_class(mut self, n: usize) -> Self {
        self.samples_per_class = n;
        self
    }

    /// Maps per sample image in the top-maps section. By default, 6.
    pub fn with_top(mut self, n: usize) -> Self {
        self.top = n;
        self
    }

    /// Images per class in the one-map and summed-maps grids. By default, 3.
    pub fn with_images_per_class(mut self, n: usize) -> Self {
        self.images_per_class = n;
        self
    }

    /// The patterns' algorithm: [`Mode::Robust`] (the default) with
    /// [`ReportConfig::with_pattern_steps`] steps, or [`Mode::Compat`], the original's default
    /// schedule.
    pub fn with_pattern_mode(mut self, mode: Mode) -> Self {
        self.pattern_mode = mode;
        self
    }

    /// Robust patterns: optimisation steps. By default, 256.
    pub fn with_pattern_steps(mut self, n: usize) -> Self {
        self.pattern_steps = n;
        self
    }

    /// The patterns' seed. By default, 0.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// How maps are drawn. By default, [`Style::Heatmap`].
    pub fn with_style(mut self, style: Style) -> Self {
        self.style = style;
        self
    }

    /// Also writes the plots as SVG (linked from the page). By default, off.
    pub fn with_svg(mut self, svg: bool) -> Self {
        self.svg = svg;
        self
    }

    /// Names the classifier's outputs, in order, where the page shows what the network
    /// predicts for a sample image. By default, `class 0`, `class 1`, ...
    pub fn with_labels(mut self, labels: Vec<String>) -> Self {
        self.labels = Some(labels);
        self
    }

    /// Says on the page that the network and images are fmv's embedded demo. By default, off.
    pub fn with_demo(mut self, demo: bool) -> Self {
        self.demo = demo;
        self
    }

    /// The layer.
    pub fn layer(&self) -> &LayerRef {
        &self.layer
    }

    /// Ranking: the per-image cut-off.
    pub fn n_each_img(&self) -> usize {
        self.n_each_img
    }

    /// Ranking: the per-class cut-off.
    pub fn n_each_class(&self) -> usize {
        self.n_each_class
    }

    /// Maps per class shown.
    pub fn maps_per_class(&self) -> usize {
        self.maps_per_class
    }

    /// Robust patterns' optimisation steps.
    pub fn pattern_steps(&self) -> usize {
        self.pattern_steps
    }

    pub(crate) fn validate(&self) -> crate::Result<()> {
        for (field, v) in [
            (ReportField::MapsPerClass, self.maps_per_class),
            (ReportField::SamplesPerClass, self.samples_per_class),
            (ReportField::Top, self.top),
            (ReportField::ImagesPerClass, self.images_per_class),
        ] {
            if v == 0 {
                return Err(crate::Error::Zero { field });
            }
        }
        Ok(())
    }
}
