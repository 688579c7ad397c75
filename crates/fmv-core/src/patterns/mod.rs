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

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use fmv_models::{LayerId, LayerRef, Pass, Tile};

use crate::decode::RgbImage;
use crate::error::{Error, Field, Problem, Result};
use crate::inputs::Skipped;
use crate::memory::Keeps;
use crate::observer::{Dyn, Event, Observer};
use crate::relay::relay;
use crate::visualizer::Visualizer;

/// Which algorithm made a pattern: [`CompatConfig`]'s or [`RobustConfig`]'s.
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

/// The settings of the original's algorithm ([`Mode::Compat`]): each scale runs a fresh Adam
/// for `opt_steps` on the pre-sigmoid image, which then grows by `upscaling_factor`.
///
/// ```
/// use fmv_core::CompatConfig;
/// let compat = CompatConfig::new().with_upscaling_steps(12);
/// assert_eq!(compat.sizes(), vec![33, 39, 46, 55, 66, 79, 94, 112, 134, 160, 192, 230]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CompatConfig {
    init_image: Option<RgbImage>,
    init_size: usize,
    lr: f64,
    opt_steps: usize,
    upscaling_steps: usize,
    upscaling_factor: f64,
}

impl Default for CompatConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl CompatConfig {
    /// The original's defaults: a random 33-pixel start, lr 0.2, 20 steps at each of 20
    /// scales growing by 1.2 (33 → 986 px).
    pub fn new() -> Self {
        CompatConfig {
            init_image: None,
            init_size: 33,
            lr: 0.2,
            opt_steps: 20,
            upscaling_steps: 20,
            upscaling_factor: 1.2,
        }
    }

    /// Starts from this 8-bit image (pixels / 255 as the pre-sigmoid parameter, as the
    /// original's random start) instead of a random one; it must be square. By default, none.
    pub fn with_init_image(mut self, img: Option<RgbImage>) -> Self {
        self.init_image = img;
        self
    }

    /// The side of the initial random image. By default, 33.
    pub fn with_init_size(mut self, size: usize) -> Self {
        self.init_size = size;
        self
    }

    /// Adam's learning rate. By default, 0.2.
    pub fn with_lr(mut self, lr: f64) -> Self {
        self.lr = lr;
        self
    }

    /// Optimisation steps per scale. By default, 20.
    pub fn with_opt_steps(mut self, n: usize) -> Self {
        self.opt_steps = n;
        self
    }

    /// The number of scales. By default, 20 (up to 986 px from 33).
    pub fn with_upscaling_steps(mut self, n: usize) -> Self {
        self.upscaling_steps = n;
        self
    }

    /// The growth factor between scales (> 1). By default, 1.2.
    pub fn with_upscaling_factor(mut self, f: f64) -> Self {
        self.upscaling_factor = f;
        self
    }

    /// Optimisation steps at each scale.
    pub fn opt_steps(&self) -> usize {
        self.opt_steps
    }

    /// Adam's learning rate.
    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// The image side at each scale, `int(factor · side)` each time.
    pub fn sizes(&self) -> Vec<usize> {
        std::iter::successors(Some(self.first_size()), |&s| {
            Some((self.upscaling_factor * s as f64) as usize)
        })
        .take(self.upscaling_steps)
        .collect()
    }

    /// The side of the first scale (the initial image's, if one is given).
    fn first_size(&self) -> usize {
        self.init_image.as_ref().map_or(self.init_size, |i| i.width)
    }

    fn validate(&self) -> Result<()> {
        let bad = |field, problem| Err(Error::invalid(field, problem));
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad(Field::Lr, Problem::NotPositive);
        }
        if self.opt_steps == 0 {
            return bad(Field::OptSteps, Problem::Zero);
        }
        if self.upscaling_steps == 0 {
            return bad(Field::UpscalingSteps, Problem::Zero);
        }
        if !(self.upscaling_factor > 1.0 && self.upscaling_factor.is_finite()) {
            return bad(Field::UpscalingFactor, Problem::NotAboveOne);
        }
        if let Some(img) = &self.init_image
            && img.width != img.height
        {
            return bad(
                Field::InitImage,
                Problem::NotSquare {
                    width: img.width,
                    height: img.height,
                },
            );
        }
        if self.init_image.is_none() && self.init_size == 0 {
            return bad(Field::InitSize, Problem::Zero);
        }
        let first = self.first_size();
        let last = first as f64
            * self
                .upscaling_factor
                .powf((self.upscaling_steps - 1) as f64);
        if last > 1e9 {
            return bad(
                Field::UpscalingSteps,
                Problem::ScheduleTooLarge {
                    scales: self.upscaling_steps,
                    first,
                    factor: self.upscaling_factor,
                    last,
                },
            );
        }
        let sizes = self.sizes();
        if sizes.windows(2).any(|w| w[1] <= w[0]) {
            return bad(
                Field::UpscalingFactor,
                Problem::ScheduleStalls {
                    factor: self.upscaling_factor,
                    first: sizes[0],
                },
            );
        }
        Ok(())
    }
}

/// The settings of the field's algorithm ([`Mode::Robust`]): Adam on a Fourier-parameterised,
/// decorrelated-colour image at the preprocessing's size, through random transformations.
///
/// ```
/// use fmv_core::{Objective, RobustConfig};
/// let robust = RobustConfig::new().with_steps(64).with_objective(Objective::Neuron);
/// assert_eq!(robust.steps(), 64);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RobustConfig {
    lr: f64,
    steps: usize,
    objective: Objective,
    tracked_tile: Tile,
    pub(crate) plateau: Option<Plateau>,
}

/// When a robust run stops optimising a map before its last step: once its objective has
/// stopped rising. Every `window` steps from `min_steps` on (and never in the first quarter of
/// the steps, while a map that never fired may still restart), the mean objective of the last
/// `window` steps is compared with the mean of the `window` before; a rise of at most
/// `min_rise` times the earlier mean (or none at all: a map that never fired) ends the map's
/// run, its image as it is. The objectives compared are those of the randomly transformed
/// images the steps see, so windows average out the transformations' noise.
///
/// Measured on the real ImageNet VGG16 (`features.28`, 8 maps, 256 steps; docs/PERFORMANCE.md,
/// "Stopping a map when its objective stops rising"), live maps still gain 9–17 % of their objective between steps 192 and 256,
/// so this rule lets them run to the end; it ends the maps that never fire.
///
/// ```
/// use fmv_core::Plateau;
/// let p = Plateau::default();
/// let rising: Vec<f64> = (0..128).map(|i| i as f64).collect();
/// assert!(!p.reached(&rising));
/// let flat = vec![3.0; 96];
/// assert!(p.reached(&flat));
/// assert!(!p.reached(&flat[..80])); // only at whole windows
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plateau {
    /// Steps per window.
    pub window: usize,
    /// Steps before the first comparison.
    pub min_steps: usize,
    /// The smallest relative rise between two windows that keeps a map going.
    pub min_rise: f64,
}

impl Default for Plateau {
    /// Windows of 32 steps from step 64 on, a rise of at least 1 %.
    fn default() -> Self {
        Plateau {
            window: 32,
            min_steps: 64,
            min_rise: 0.01,
        }
    }
}

impl Plateau {
    /// Whether a run whose objectives so far are `trace` has reached the plateau: checked when
    /// `trace` ends a window at or after `min_steps`.
    pub fn reached(&self, trace: &[f64]) -> bool {
        let (n, w) = (trace.len(), self.window.max(1));
        if n < self.min_steps.max(2 * w) || n % w != 0 {
            return false;
        }
        let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
        let last = mean(&trace[n - w..]);
        let before = mean(&trace[n - 2 * w..n - w]);
        last - before <= self.min_rise * before.abs()
    }
}

impl Default for RobustConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl RobustConfig {
    /// lr 0.05, 256 steps, the map's mean.
    pub fn new() -> Self {
        RobustConfig {
            lr: 0.05,
            steps: 256,
            objective: Objective::Channel,
            tracked_tile: Tile::F4,
            plateau: Some(Plateau::default()),
        }
    }

    /// Stops a map once its objective stops rising ([`Plateau`]; by default
    /// [`Plateau::default`]); `None` runs every step.
    pub fn with_plateau(mut self, plateau: Option<Plateau>) -> Self {
        self.plateau = plateau;
        self
    }

    /// When a map stops before the last step, if ever.
    pub fn plateau(&self) -> Option<Plateau> {
        self.plateau
    }

    /// The largest Winograd tile the steps' 3×3 convolutions take on the CPU, forward and
    /// backward. By default [`Tile::F4`] (on maps of at least 24 pixels a side): 1.8× fewer
    /// multiplications than [`Tile::F2`], which rounds like the direct algorithm and which the
    /// compat mode always takes.
    pub fn with_tracked_tile(mut self, tile: Tile) -> Self {
        self.tracked_tile = tile;
        self
    }

    /// The largest Winograd tile the steps' 3×3 convolutions take.
    pub fn tracked_tile(&self) -> Tile {
        self.tracked_tile
    }

    /// Adam's learning rate. By default, 0.05.
    pub fn with_lr(mut self, lr: f64) -> Self {
        self.lr = lr;
        self
    }

    /// Optimisation steps. By default, 256.
    pub fn with_steps(mut self, n: usize) -> Self {
        self.steps = n;
        self
    }

    /// What is maximised. By default, [`Objective::Channel`].
    pub fn with_objective(mut self, objective: Objective) -> Self {
        self.objective = objective;
        self
    }

    /// Optimisation steps.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Adam's learning rate.
    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// What is maximised.
    pub fn objective(&self) -> Objective {
        self.objective
    }

    fn validate(&self) -> Result<()> {
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(Error::invalid(Field::Lr, Problem::NotPositive));
        }
        if self.steps == 0 {
            return Err(Error::invalid(Field::Steps, Problem::Zero));
        }
        Ok(())
    }
}

/// Which algorithm [`Visualizer::maximize`] runs, with its settings: one or the other, so
/// that no setting of one can be given to the other.
#[derive(Debug, Clone, PartialEq)]
pub enum PatternAlgorithm {
    /// The original's algorithm.
    Compat(CompatConfig),
    /// The field's algorithm.
    Robust(RobustConfig),
}

impl PatternAlgorithm {
    /// Which algorithm this is.
    pub fn mode(&self) -> Mode {
        match self {
            PatternAlgorithm::Compat(_) => Mode::Compat,
            PatternAlgorithm::Robust(_) => Mode::Robust,
        }
    }
}

impl From<CompatConfig> for PatternAlgorithm {
    fn from(c: CompatConfig) -> Self {
        PatternAlgorithm::Compat(c)
    }
}

impl From<RobustConfig> for PatternAlgorithm {
    fn from(r: RobustConfig) -> Self {
        PatternAlgorithm::Robust(r)
    }
}

/// What [`Visualizer::maximize`] computes: the filters, the layer and the algorithm in
/// [`PatternConfig::new`], the seed through [`PatternConfig::with_seed`].
///
/// ```
/// use fmv_core::{CompatConfig, Mode, PatternConfig};
/// let cfg = PatternConfig::new("layer4.1".parse().unwrap(), vec![452], CompatConfig::new())
///     .with_seed(7);
/// assert_eq!(cfg.mode(), Mode::Compat);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PatternConfig {
    layer: LayerRef,
    filters: Vec<usize>,
    seed: u64,
    algorithm: PatternAlgorithm,
}

impl PatternConfig {
    /// Maximises each of `filters` (channels) of `layer` with `algorithm` (a
    /// [`CompatConfig`] or a [`RobustConfig`]).
    pub fn new(
        layer: LayerRef,
        filters: Vec<usize>,
        algorithm: impl Into<PatternAlgorithm>,
    ) -> Self {
        PatternConfig {
            layer,
            filters,
            seed: 0,
            algorithm: algorithm.into(),
        }
    }

    /// Seeds fmv's own random generator (initial image, transformations). By default, 0.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The layer.
    pub fn layer(&self) -> &LayerRef {
        &self.layer
    }

    /// The filters.
    pub fn filters(&self) -> &[usize] {
        &self.filters
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The algorithm and its settings.
    pub fn algorithm(&self) -> &PatternAlgorithm {
        &self.algorithm
    }

    /// Which algorithm runs.
    pub fn mode(&self) -> Mode {
        self.algorithm.mode()
    }

    fn validate(&self) -> Result<()> {
        if self.filters.is_empty() {
            return Err(Error::invalid(Field::Filters, Problem::NoChannels));
        }
        if let Some(&f) = crate::lists::first_repeated(&self.filters) {
            return Err(Error::invalid(Field::Filters, Problem::ChannelTwice(f)));
        }
        match &self.algorithm {
            PatternAlgorithm::Compat(c) => c.validate(),
            PatternAlgorithm::Robust(r) => r.validate(),
        }
    }
}

/// A step of a run, as the runners report it ([`Event::Step`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Step {
    pub done: usize,
    pub total: usize,
    pub activation: f64,
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
    /// The optimisation steps taken: fewer than asked for where a robust run reached a
    /// [`Plateau`] or was interrupted.
    pub fn steps(&self) -> usize {
        self.activation_trace.len()
    }

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
    /// The observer is asked to stop every step: once it says so the run ends and each
    /// pattern holds the best image seen so far (`interrupted` set); in compat mode, filters
    /// that had not started yet are left out, so fewer patterns than filters come back.
    ///
    /// Compat mode on the CPU runs several filters side by side, one per thread (each
    /// filter's result is the same as alone); robust mode optimises them as one batch.
    /// [`Event::Step`] counts the steps of all filters together.
    ///
    /// ```no_run
    /// use fmv_core::{CompatConfig, PatternConfig, Preprocess, Visualizer};
    /// use fmv_models::{LoadOptions, Model};
    /// let viz = Visualizer::new(Model::load("resnet50.safetensors", &LoadOptions::new())?)
    ///     .with_preprocess(Preprocess::original());
    /// let cfg = PatternConfig::new("-2".parse()?, vec![113], CompatConfig::new()).with_seed(1);
    /// let pattern = viz.maximize(&cfg, &mut ())?.remove(0);
    /// println!("{}×{}, activation {}", pattern.width, pattern.height, pattern.final_activation);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn maximize(
        &self,
        config: &PatternConfig,
        observer: &mut (impl Observer + ?Sized),
    ) -> Result<Vec<Pattern>> {
        config.validate()?;
        let layer = self.resolve(&config.layer)?;
        for &f in &config.filters {
            self.check_channel(layer, f)?;
        }
        match &config.algorithm {
            PatternAlgorithm::Compat(compat) => {
                let sizes = compat.sizes();
                self.check_input_size(layer, sizes[0], Field::InitSize)?;
                // Filters may run side by side, but one at least runs at the last scale.
                let last = sizes[sizes.len() - 1];
                self.check_memory(
                    layer,
                    (last, last),
                    1,
                    Keeps::EveryMap,
                    &format!("a compat step at the last scale, {last}x{last} px,"),
                    (
                        &[
                            Field::InitSize,
                            Field::UpscalingSteps,
                            Field::UpscalingFactor,
                        ],
                        " (the default schedule ends at 986 px)",
                    ),
                )?;
            }
            PatternAlgorithm::Robust(_) => {
                let (w, h) = self.preprocess().size();
                self.check_input_size(layer, w.min(h), Field::Size)?;
                self.check_memory(
                    layer,
                    (h, w),
                    config.filters.len(),
                    Keeps::EveryMap,
                    &format!(
                        "a robust step on {} filter(s) at {w}x{h} px",
                        config.filters.len()
                    ),
                    (&[Field::Size], ", or give fewer filters at a time"),
                )?;
            }
        }
        let run = |on_step: &mut dyn FnMut(Step), should_stop: &dyn Fn() -> bool| match &config
            .algorithm
        {
            PatternAlgorithm::Compat(c) => {
                compat::run_all(self, layer, (config, c), on_step, should_stop)
            }
            PatternAlgorithm::Robust(r) => {
                robust::run(self, layer, (config, r), on_step, should_stop)
            }
        };
        // Both callbacks reach the one observer, never at the same time.
        let observer = RefCell::new(Dyn(observer));
        let on_step = |s: Step| {
            observer.borrow_mut().on_event(&Event::Step {
                done: s.done,
                total: s.total,
                activation: s.activation,
            })
        };
        let should_stop = || observer.borrow_mut().should_stop();
        // On the CPU, on a thread of rayon's pool, so that each op's parallel parts are taken
        // by work-stealing rather than handed over from this thread (`relay`); directly where
        // this thread is one of a pool's already (waiting here for the pool could deadlock it).
        if !self.backbone().device().is_cpu() || rayon::current_thread_index().is_some() {
            let mut on_step = on_step;
            return run(&mut on_step, &should_stop);
        }
        relay(
            |call, halt| {
                rayon::scope(|_| {
                    let stopped = || halt.load(Ordering::SeqCst);
                    run(&mut |s| call(s), &stopped)
                })
            },
            on_step,
            &should_stop,
        )
    }

    /// Fails, naming `field`, if a `side`×`side` input cannot reach `layer`.
    fn check_input_size(&self, layer: LayerId, side: usize, field: Field) -> Result<()> {
        let reaches = |n: usize| {
            self.backbone().spatial_sizes(n, n)[..=layer.0]
                .iter()
                .all(Option::is_some)
        };
        if reaches(side) {
            return Ok(());
        }
        let min = (1..=4096).find(|&n| reaches(n)).unwrap_or(4096);
        Err(Error::invalid(
            field,
            Problem::TooSmall {
                side,
                layer: self.backbone().layer(layer).name.clone(),
                min,
            },
        ))
    }

    /// The objective for the input `x` (`B×3×H×W`), one value per batch element and filter; a
    /// tracked `x`'s 3×3 convolutions take Winograd tiles up to `tracked_tile`.
    pub(crate) fn objective(
        &self,
        x: &candle_core::Tensor,
        layer: LayerId,
        filters: &[usize],
        (objective, tracked_tile): (Objective, Tile),
    ) -> Result<candle_core::Tensor> {
        use candle_core::IndexOp;
        // Only the filters' channels of the layer, in their order (the network computes only
        // those where it can): channel `j` of `t` is filter `j`.
        let pass = Pass::from_input()
            .with_tracked_tile(tracked_tile)
            .selecting(layer, filters.to_vec());
        let t = self.backbone().forward_pass(x, &pass, &[layer])?.remove(0);
        let mut per = Vec::with_capacity(filters.len());
        for j in 0..filters.len() {
            let b = if x.dim(0)? == 1 { 0 } else { j };
            let v = if t.rank() == 4 {
                let m = t.i((b, j))?;
                match objective {
                    Objective::Channel => m.mean_all()?,
                    Objective::Neuron => {
                        let (h, w) = m.dims2()?;
                        m.i((h / 2, w / 2))?
                    }
                }
            } else {
                t.i((b, j))?
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

/// The gradient that reached the image `var`, as `f32`s in its layout.
pub(crate) fn image_gradient(
    grads: &candle_core::backprop::GradStore,
    var: &candle_core::Var,
) -> Result<Vec<f32>> {
    let grad = grads.get(var.as_tensor()).ok_or_else(|| {
        Error::from(candle_core::Error::Msg(
            "no gradient reached the image".into(),
        ))
    })?;
    Ok(grad
        .flatten_all()?
        .to_dtype(candle_core::DType::F32)?
        .to_vec1()?)
}

/// What [`Visualizer::max_activations`] computes: the highest value of each filter's objective
/// over real images, which a pattern has to beat.
///
/// ```
/// use fmv_core::{MaxActivationsConfig, Objective};
/// let cfg = MaxActivationsConfig::new("layer4.1".parse().unwrap(), vec![113])
///     .with_objective(Objective::Neuron);
/// assert_eq!(cfg.filters(), [113]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaxActivationsConfig {
    layer: LayerRef,
    filters: Vec<usize>,
    objective: Objective,
}

impl MaxActivationsConfig {
    /// The maxima of `filters` (channels) of `layer`.
    pub fn new(layer: LayerRef, filters: Vec<usize>) -> Self {
        MaxActivationsConfig {
            layer,
            filters,
            objective: Objective::Channel,
        }
    }

    /// What is compared: each image's channel mean or its map's centre value. By default,
    /// [`Objective::Channel`].
    pub fn with_objective(mut self, objective: Objective) -> Self {
        self.objective = objective;
        self
    }

    /// The filters.
    pub fn filters(&self) -> &[usize] {
        &self.filters
    }
}

/// The result of [`Visualizer::max_activations`].
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MaxActivations {
    /// The highest value of each filter's objective, in filter order.
    pub maxima: Vec<f32>,
    /// Files left out, with the reason.
    pub skipped: Vec<Skipped>,
}

impl Visualizer {
    /// The highest value of each filter's objective over real images (each image's channel
    /// mean, or its map's centre value): what a pattern has to beat. Stopped, it returns
    /// [`Error::Stopped`].
    pub fn max_activations(
        &self,
        images: &[PathBuf],
        config: &MaxActivationsConfig,
        observer: &mut (impl Observer + ?Sized),
    ) -> Result<MaxActivations> {
        use crate::stream::{Item, StreamSpec};
        let (filters, objective) = (&config.filters, config.objective);
        let id = self.resolve(&config.layer)?;
        let spec = StreamSpec {
            map_channels: filters.to_vec(),
            ..StreamSpec::default()
        };
        let mut best = vec![f32::NEG_INFINITY; filters.len()];
        let mut skipped = Vec::new();
        let mut on_item = |_: &Path, item: Item, observer: &mut dyn Observer| -> Result<()> {
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
                Item::Failed { skipped: s, .. } => {
                    observer.on_event(&Event::Skipped(&s));
                    skipped.push(s);
                }
            }
            Ok(())
        };
        self.stream(
            images,
            id,
            &spec,
            (0, images.len()),
            &mut on_item,
            &mut Dyn(observer),
        )?;
        if best.iter().any(|b| !b.is_finite()) {
            return Err(Error::NoImages {
                reason: "no reference image could be used".into(),
            });
        }
        Ok(MaxActivations {
            maxima: best,
            skipped,
        })
    }
}
