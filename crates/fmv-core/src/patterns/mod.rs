//! Activation maximisation (viz 1): an image that makes one feature map fire as hard as
//! possible, by gradient ascent on the input.
//!
//! Two modes. [`Mode::Compat`] is FeatureMapVisualizer's `visualize_patterns`, step for step.
//! [`Mode::Robust`] is what the field learned since (Olah et al., "Feature Visualization",
//! Distill 2017; Lucid/Lucent): a decorrelated-colour, frequency-scaled Fourier
//! parameterisation, random jitter/scale/rotation every step, and the model's own input
//! normalisation, at the model's resolution.

mod adam;
mod compat;
mod robust;

use std::sync::atomic::Ordering;

use fmv_models::{LayerId, LayerRef};

use crate::decode::RgbImage;
use crate::error::{Error, Result};
use crate::memory::Keeps;
use crate::relay::relay;
use crate::visualizer::{Event, Visualizer};

/// Which algorithm [`Visualizer::maximize`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The original's algorithm: sigmoid-parameterised pixels from a small random image,
    /// Adam with L2 decay, bicubic upscaling between scales, no normalisation.
    Compat,
    /// Fourier parameterisation with decorrelated colour, random transformations, the
    /// preprocessing's normalisation, at the input size.
    Robust,
}

impl Mode {
    /// `compat` or `robust`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Compat => "compat",
            Mode::Robust => "robust",
        }
    }
}

/// What is maximised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Objective {
    /// The map's spatial mean (the original's objective).
    Channel,
    /// The map's centre value (one unit).
    Neuron,
}

/// What [`Visualizer::maximize`] computes: required values in [`PatternConfig::new`], the
/// rest through `with_*`.
///
/// ```
/// use fmv_core::{Mode, PatternConfig};
/// let cfg = PatternConfig::new("layer4.1".parse().unwrap(), vec![452])
///     .with_mode(Mode::Compat)
///     .with_seed(7)
///     .with_upscaling_steps(12);
/// assert_eq!(cfg.sizes(), vec![33, 39, 46, 55, 66, 79, 94, 112, 134, 160, 192, 230]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PatternConfig {
    layer: LayerRef,
    filters: Vec<usize>,
    mode: Mode,
    seed: u64,
    init_image: Option<RgbImage>,
    init_size: usize,
    lr: Option<f64>,
    opt_steps: usize,
    upscaling_steps: usize,
    upscaling_factor: f64,
    steps: usize,
    objective: Objective,
}

impl PatternConfig {
    /// Maximises each of `filters` (channels) of `layer`.
    pub fn new(layer: LayerRef, filters: Vec<usize>) -> Self {
        PatternConfig {
            layer,
            filters,
            mode: Mode::Robust,
            seed: 0,
            init_image: None,
            init_size: 33,
            lr: None,
            opt_steps: 20,
            upscaling_steps: 20,
            upscaling_factor: 1.2,
            steps: 256,
            objective: Objective::Channel,
        }
    }

    /// The algorithm. By default, [`Mode::Robust`].
    pub fn with_mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Seeds fmv's own random generator (initial image, transformations). By default, 0.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Compat: starts from this 8-bit image (pixels / 255 as the pre-sigmoid parameter, as the
    /// original's random start) instead of a random one; it must be square. By default, none.
    pub fn with_init_image(mut self, img: Option<RgbImage>) -> Self {
        self.init_image = img;
        self
    }

    /// Compat: side of the initial random image. By default, 33.
    pub fn with_init_size(mut self, size: usize) -> Self {
        self.init_size = size;
        self
    }

    /// Adam's learning rate. By default, 0.2 in compat mode, 0.05 in robust mode.
    pub fn with_lr(mut self, lr: f64) -> Self {
        self.lr = Some(lr);
        self
    }

    /// Compat: optimisation steps per scale. By default, 20.
    pub fn with_opt_steps(mut self, n: usize) -> Self {
        self.opt_steps = n;
        self
    }

    /// Compat: number of scales. By default, 20 (up to 986 px from 33).
    pub fn with_upscaling_steps(mut self, n: usize) -> Self {
        self.upscaling_steps = n;
        self
    }

    /// Compat: growth factor between scales (> 1). By default, 1.2.
    pub fn with_upscaling_factor(mut self, f: f64) -> Self {
        self.upscaling_factor = f;
        self
    }

    /// Robust: optimisation steps. By default, 256.
    pub fn with_steps(mut self, n: usize) -> Self {
        self.steps = n;
        self
    }

    /// Robust: what is maximised. By default, [`Objective::Channel`].
    pub fn with_objective(mut self, objective: Objective) -> Self {
        self.objective = objective;
        self
    }

    /// The filters.
    pub fn filters(&self) -> &[usize] {
        &self.filters
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Compat: optimisation steps at each scale.
    pub fn opt_steps(&self) -> usize {
        self.opt_steps
    }

    /// Compat: the image side at each scale, `int(factor · side)` each time.
    pub fn sizes(&self) -> Vec<usize> {
        std::iter::successors(Some(self.first_size()), |&s| {
            Some((self.upscaling_factor * s as f64) as usize)
        })
        .take(self.upscaling_steps)
        .collect()
    }

    /// Compat: the side of the first scale (the initial image's, if one is given).
    fn first_size(&self) -> usize {
        self.init_image.as_ref().map_or(self.init_size, |i| i.width)
    }

    fn lr(&self) -> f64 {
        self.lr.unwrap_or(match self.mode {
            Mode::Compat => 0.2,
            Mode::Robust => 0.05,
        })
    }

    fn validate(&self) -> Result<()> {
        let bad = |name: &'static str, reason: &str| {
            Err(Error::InvalidArgument {
                name,
                reason: reason.into(),
            })
        };
        if self.filters.is_empty() {
            return bad("--filter", "give at least one channel");
        }
        if let Some(f) = crate::lists::first_repeated(&self.filters) {
            return bad(
                "--filter",
                &format!("channel {f} is listed twice; its pattern (and file) would be made twice"),
            );
        }
        if !(self.lr() > 0.0 && self.lr().is_finite()) {
            return bad("--lr", "must be positive and finite");
        }
        match self.mode {
            Mode::Compat => {
                if self.opt_steps == 0 {
                    return bad("--opt-steps", "must be at least 1");
                }
                if self.upscaling_steps == 0 {
                    return bad("--upscaling-steps", "must be at least 1");
                }
                if !(self.upscaling_factor > 1.0 && self.upscaling_factor.is_finite()) {
                    return bad(
                        "--upscaling-factor",
                        "must be greater than 1 (each scale is larger than the last)",
                    );
                }
                if let Some(img) = &self.init_image
                    && img.width != img.height
                {
                    return bad(
                        "--init-image",
                        &format!("must be square, is {}x{}", img.width, img.height),
                    );
                }
                if self.init_image.is_none() && self.init_size == 0 {
                    return bad("--init-size", "must be at least 1");
                }
                let first = self.first_size();
                let last = first as f64
                    * self
                        .upscaling_factor
                        .powf((self.upscaling_steps - 1) as f64);
                if last > 1e9 {
                    return bad(
                        "--upscaling-steps",
                        &format!(
                            "{} scales from {first} px by {} would end {last:.1e} px wide; \
                             the default schedule ends at 986 px",
                            self.upscaling_steps, self.upscaling_factor
                        ),
                    );
                }
                let sizes = self.sizes();
                if sizes.windows(2).any(|w| w[1] <= w[0]) {
                    return bad(
                        "--upscaling-factor",
                        &format!(
                            "{} does not grow a {}-pixel image; use a larger factor or --init-size",
                            self.upscaling_factor, sizes[0]
                        ),
                    );
                }
            }
            Mode::Robust => {
                if self.steps == 0 {
                    return bad("--steps", "must be at least 1");
                }
            }
        }
        Ok(())
    }
}

/// One maximised pattern.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Pattern {
    /// The layer's name.
    pub layer: String,
    /// The channel.
    pub filter: usize,
    /// `compat` or `robust`.
    pub mode: String,
    /// The seed.
    pub seed: u64,
    /// The objective at each optimisation step's forward pass, in order.
    pub activation_trace: Vec<f64>,
    /// The objective for the returned image (without random transformations).
    pub final_activation: f64,
    /// Width of the image.
    pub width: usize,
    /// Height of the image.
    pub height: usize,
    /// The image, `height · width · 3` values in `[0, 1]`, row-major, channels last.
    pub image: Vec<f32>,
    /// Whether the run was stopped early: the image is then the best one seen.
    pub interrupted: bool,
}

impl Pattern {
    /// The image in 8 bits.
    pub fn to_rgb8(&self) -> RgbImage {
        RgbImage {
            width: self.width,
            height: self.height,
            pixels: self
                .image
                .iter()
                .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
                .collect(),
        }
    }
}

impl Visualizer {
    /// Maximises each filter of `config` and returns one [`Pattern`] per filter, in order.
    /// `should_stop` is polled every step: once it answers `true` the run ends and each
    /// pattern holds the best image seen so far (`interrupted` set); in compat mode, filters
    /// that had not started yet are left out, so fewer patterns than filters come back.
    ///
    /// Compat mode on the CPU runs several filters side by side, one per thread (each
    /// filter's result is the same as alone); robust mode optimises them as one batch.
    /// [`Event::Step`] counts the steps of all filters together.
    ///
    /// ```no_run
    /// use fmv_core::{Mode, PatternConfig, Preprocess, Visualizer};
    /// use fmv_models::{LoadOptions, Model};
    /// let viz = Visualizer::new(Model::load("resnet50.safetensors", &LoadOptions::new())?)
    ///     .with_preprocess(Preprocess::original());
    /// let cfg = PatternConfig::new("-2".parse()?, vec![113]).with_mode(Mode::Compat).with_seed(1);
    /// let pattern = viz.maximize(&cfg, &mut |_| {}, &|| false)?.remove(0);
    /// println!("{}×{}, activation {}", pattern.width, pattern.height, pattern.final_activation);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn maximize(
        &self,
        config: &PatternConfig,
        on_event: &mut dyn FnMut(&Event),
        should_stop: &dyn Fn() -> bool,
    ) -> Result<Vec<Pattern>> {
        config.validate()?;
        let layer = self.resolve(&config.layer)?;
        for &f in &config.filters {
            self.check_channel(layer, f)?;
        }
        let run = match config.mode {
            Mode::Compat => {
                let sizes = config.sizes();
                self.check_input_size(layer, sizes[0], "--init-size")?;
                // Filters may run side by side, but one at least runs at the last scale.
                let last = sizes[sizes.len() - 1];
                self.check_memory(
                    layer,
                    (last, last),
                    1,
                    Keeps::EveryMap,
                    &format!("a compat step at the last scale, {last}x{last} px,"),
                    "lower --init-size, --upscaling-steps or --upscaling-factor \
                     (the default schedule ends at 986 px)",
                )?;
                compat::run_all
            }
            Mode::Robust => {
                let (w, h) = self.preprocess().size();
                self.check_input_size(layer, w.min(h), "--size")?;
                self.check_memory(
                    layer,
                    (h, w),
                    config.filters.len(),
                    Keeps::EveryMap,
                    &format!(
                        "a robust step on {} filter(s) at {w}x{h} px",
                        config.filters.len()
                    ),
                    "lower --size, or give fewer filters at a time",
                )?;
                robust::run
            }
        };
        // On the CPU, on a thread of rayon's pool, so that each op's parallel parts are taken
        // by work-stealing rather than handed over from this thread (`relay`); directly where
        // this thread is one of a pool's already (waiting here for the pool could deadlock it).
        if !self.backbone().device().is_cpu() || rayon::current_thread_index().is_some() {
            return run(self, layer, config, on_event, should_stop);
        }
        relay(
            |call, halt| {
                rayon::scope(|_| {
                    let stopped = || halt.load(Ordering::SeqCst);
                    run(self, layer, config, &mut |e| call(e.clone()), &stopped)
                })
            },
            |e| on_event(&e),
            should_stop,
        )
    }

    /// Fails, naming `arg`, if a `side`×`side` input cannot reach `layer`.
    fn check_input_size(&self, layer: LayerId, side: usize, arg: &'static str) -> Result<()> {
        let reaches = |n: usize| {
            self.backbone().spatial_sizes(n, n)[..=layer.0]
                .iter()
                .all(Option::is_some)
        };
        if reaches(side) {
            return Ok(());
        }
        let min = (1..=4096).find(|&n| reaches(n)).unwrap_or(4096);
        Err(Error::InvalidArgument {
            name: arg,
            reason: format!(
                "a {side}x{side} image is too small to reach `{}`; this network needs at least {min}x{min}",
                self.backbone().layer(layer).name
            ),
        })
    }

    /// The objective for the input `x` (`B×3×H×W`), one value per batch element and filter.
    pub(crate) fn objective(
        &self,
        x: &candle_core::Tensor,
        layer: LayerId,
        filters: &[usize],
        objective: Objective,
    ) -> Result<candle_core::Tensor> {
        use candle_core::IndexOp;
        let t = self.backbone().forward_taps(x, &[layer])?.remove(0);
        let mut per = Vec::with_capacity(filters.len());
        for (b, &f) in filters.iter().enumerate() {
            let b = if x.dim(0)? == 1 { 0 } else { b };
            let v = if t.rank() == 4 {
                let m = t.i((b, f))?;
                match objective {
                    Objective::Channel => m.mean_all()?,
                    Objective::Neuron => {
                        let (h, w) = m.dims2()?;
                        m.i((h / 2, w / 2))?
                    }
                }
            } else {
                t.i((b, f))?
            };
            per.push(v.reshape(1)?);
        }
        Ok(candle_core::Tensor::cat(&per, 0)?)
    }
}

/// `1 / (1 + e^−x)`, differentiable.
pub(crate) fn sigmoid(x: &candle_core::Tensor) -> candle_core::Result<candle_core::Tensor> {
    (x.neg()?.exp()? + 1.0)?.recip()
}

impl Visualizer {
    /// The highest value of each filter's objective over real images (each image's channel mean,
    /// or its map's centre value): what a pattern has to beat. Returns the maxima in filter order
    /// and the files skipped.
    pub fn max_activations(
        &self,
        images: &[std::path::PathBuf],
        layer: &LayerRef,
        filters: &[usize],
        objective: Objective,
        on_event: &mut dyn FnMut(&Event),
    ) -> Result<(Vec<f32>, Vec<crate::inputs::Skipped>)> {
        use crate::stream::{Item, StreamSpec};
        let id = self.resolve(layer)?;
        let spec = StreamSpec {
            map_channels: filters.to_vec(),
            ..StreamSpec::default()
        };
        let mut best = vec![f32::NEG_INFINITY; filters.len()];
        let mut skipped = Vec::new();
        let mut on_item = |_: &std::path::Path, item: Item| -> Result<()> {
            match item {
                Item::Image(o) => {
                    let (h, w) = o.map_size;
                    for (k, &f) in filters.iter().enumerate() {
                        let v = match objective {
                            Objective::Channel => o.means[f],
                            Objective::Neuron => o.maps[k][(h / 2) * w + w / 2],
                        };
                        best[k] = best[k].max(v);
                    }
                }
                Item::Failed { skipped: s, .. } => skipped.push(s),
            }
            Ok(())
        };
        self.stream(images, id, &spec, (0, images.len()), &mut on_item, on_event)?;
        if best.iter().any(|b| !b.is_finite()) {
            return Err(Error::NoImages {
                reason: "no reference image could be used".into(),
            });
        }
        Ok((best, skipped))
    }
}
