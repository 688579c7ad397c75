//! [`Model`]: a loaded ResNet or VGG with named taps, and the [`Backbone`] trait the analysis
//! code is written against.

use std::path::Path;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Module, Tensor};

use crate::arch::{ARCH_NAMES, Arch};
use crate::checkpoint::Checkpoint;
use crate::classifier::Classifier;
use crate::error::{BackendContext, Error, Result};
use crate::head::{HeadLayout, HeadState};
use crate::identity::Provenance;
use crate::layer::{Family, LayerId, LayerInfo, LayerKind, LayerRef};
use fmv_kernels::{Algorithms, ConvAlgorithm, InputGradAlgorithm};

use crate::ops::Build;
use crate::resnet::ResNet;
use crate::taps::{Pass, Tapper};
use crate::vgg::Vgg;

/// A network whose feature maps can be read by name.
///
/// Implemented by [`Model`]; analysis code takes `&dyn Backbone` so that its tests can use a
/// tiny hand-made network.
pub trait Backbone: Send + Sync {
    /// The architecture's depth name (`resnet50`, `vgg16_bn`).
    fn arch_name(&self) -> String;
    /// The family, which decides some of the original package's conventions.
    fn family(&self) -> Family;
    /// Every tap, in forward order; a [`LayerId`] indexes this list.
    fn layers(&self) -> &[LayerInfo];
    /// The device the weights live on; inputs must be on it too.
    fn device(&self) -> &Device;
    /// The float type of the weights; inputs must have it too.
    fn dtype(&self) -> DType;
    /// The spatial size of every tap for an `h`×`w` input (`None` where it would be empty),
    /// in the order of [`Backbone::layers`]. `logits` are 1×1.
    fn spatial_sizes(&self, h: usize, w: usize) -> Vec<Option<(usize, usize)>>;
    /// Resolves the original package's integer layer (see [`LayerRef::Compat`]).
    fn resolve_compat(&self, index: i64) -> Result<LayerId>;
    /// Runs the network on `x` (`N×3×H×W`) as far as the deepest of `taps` and returns each
    /// tap's value in the order asked: `N×C×h×w` for maps, `N×classes` for `logits`.
    fn forward_taps(&self, x: &Tensor, taps: &[LayerId]) -> Result<Vec<Tensor>> {
        self.forward_pass(x, &Pass::from_input(), taps)
    }
    /// [`Backbone::forward_taps`] as `pass` says: from the input or from a tap's value
    /// ([`Pass::from_tap`]; `x` then has that tap's shape, and only taps from there on can be
    /// asked for), with channels of one tap zeroed ([`Pass::zeroing`]).
    fn forward_pass(&self, x: &Tensor, pass: &Pass, taps: &[LayerId]) -> Result<Vec<Tensor>>;
    /// Where the weights came from, and their identity, which results record (computed on
    /// first use: hashing a large file takes a while).
    fn provenance(&self) -> Result<Provenance>;
    /// The algorithms the layers run, which results record (they round differently).
    fn algorithms(&self) -> Algorithms;

    /// Resolves a layer by name or compat integer; an unknown name is an error that lists the
    /// valid ones.
    fn resolve(&self, layer: &LayerRef) -> Result<LayerId> {
        match layer {
            LayerRef::Compat(i) => self.resolve_compat(*i),
            LayerRef::Name(name) => resolve_name(self.layers(), name),
        }
    }

    /// The tap's description.
    fn layer(&self, id: LayerId) -> &LayerInfo {
        &self.layers()[id.0]
    }
}

/// The tap called `name`; an unknown name is an error that lists the valid ones.
fn resolve_name(layers: &[LayerInfo], name: &str) -> Result<LayerId> {
    layers
        .iter()
        .position(|l| l.name == name)
        .map(LayerId)
        .ok_or_else(|| Error::UnknownLayer {
            name: name.to_string(),
            valid: layers
                .iter()
                .map(|l| l.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// How to load a checkpoint.
///
/// ```
/// use fmv_models::LoadOptions;
/// let opts = LoadOptions::new().with_arch("resnet50");
/// assert_eq!(opts.arch(), Some("resnet50"));
/// ```
#[derive(Debug, Clone)]
pub struct LoadOptions {
    arch: Option<String>,
    head: Option<HeadLayout>,
    state_key: Option<String>,
    device: Device,
    dtype: DType,
    algorithms: Algorithms,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl LoadOptions {
    /// Automatic architecture, CPU, `f32`, the default algorithms.
    pub fn new() -> Self {
        LoadOptions {
            arch: None,
            head: None,
            state_key: None,
            device: Device::Cpu,
            dtype: DType::F32,
            algorithms: Algorithms::default(),
        }
    }

    /// Requires the checkpoint to hold this architecture (`resnet50`, `vgg16_bn`, ...; `auto`
    /// means infer it). Widths may differ from torchvision's (narrow and wide variants). By
    /// default, the architecture is inferred.
    pub fn with_arch(mut self, arch: impl Into<String>) -> Self {
        let arch = arch.into();
        self.arch = (arch != "auto").then_some(arch);
        self
    }

    /// States the head's modules (the CLI's `--head`), one per index of its `Sequential`,
    /// instead of torchvision's convention for the modules without tensors (a ReLU between two
    /// layers). A layout that does not fit the file's tensors is an error at load. By default,
    /// the convention.
    pub fn with_head(mut self, layout: HeadLayout) -> Self {
        self.head = Some(layout);
        self
    }

    /// Reads the state dict under this top-level key of a `.pth` (`state_dict_ema`,
    /// `model_ema`: an EMA copy) instead of the one fmv prefers (`state_dict`, `model`, ...).
    /// By default, the preferred one.
    pub fn with_state_key(mut self, key: impl Into<String>) -> Self {
        self.state_key = Some(key.into());
        self
    }

    /// The chosen state key, if any.
    pub fn state_key(&self) -> Option<&str> {
        self.state_key.as_deref()
    }

    /// The stated head, if any.
    pub fn head(&self) -> Option<&HeadLayout> {
        self.head.as_ref()
    }

    /// Puts the weights on `device`. By default, the CPU.
    pub fn with_device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }

    /// Computes in `dtype` (`F32` or `F64`). By default, `F32`.
    pub fn with_dtype(mut self, dtype: DType) -> Self {
        self.dtype = dtype;
        self
    }

    /// Runs the convolutions on the CPU with this algorithm (they round differently; see
    /// [`ConvAlgorithm`]). By default, [`ConvAlgorithm::Winograd`].
    pub fn with_conv_algorithm(mut self, algorithm: ConvAlgorithm) -> Self {
        self.algorithms.conv = algorithm;
        self
    }

    /// Computes input gradients this way where fmv's CPU convolution does not run (see
    /// [`InputGradAlgorithm`]). By default, [`InputGradAlgorithm::Flipped`].
    pub fn with_input_grad_algorithm(mut self, algorithm: InputGradAlgorithm) -> Self {
        self.algorithms.input_grad = algorithm;
        self
    }

    /// The required architecture, if any.
    pub fn arch(&self) -> Option<&str> {
        self.arch.as_deref()
    }

    /// The algorithms asked for.
    pub fn algorithms(&self) -> Algorithms {
        self.algorithms
    }
}

enum Net {
    ResNet(ResNet),
    Vgg(Vgg),
}

/// A loaded ResNet or VGG.
///
/// The classifier is read from the checkpoint only when `logits` are first asked for, so a
/// forward pass that stops at a feature map never loads it (VGG16's is 480 MB), and a head fmv
/// cannot interpret ([`HeadState::Unusable`]) is an error only then.
///
/// ```no_run
/// use fmv_models::{Backbone, LayerRef, LoadOptions, Model};
/// let model = Model::load("resnet50.safetensors", &LoadOptions::new())?;
/// let layer = model.resolve(&LayerRef::Compat(-2))?; // layer4.1 on ResNet50
/// let x = candle_core::Tensor::zeros((1, 3, 224, 224), candle_core::DType::F32, model.device())?;
/// let maps = &model.forward_taps(&x, &[layer])?[0]; // 1×2048×7×7
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Model {
    arch: Arch,
    algorithms: Algorithms,
    net: Net,
    layers: Vec<LayerInfo>,
    checkpoint: Arc<Checkpoint>,
    head: Mutex<Option<Arc<Classifier>>>,
    device: Device,
    dtype: DType,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("arch", &self.arch.description())
            .field("checkpoint", &self.checkpoint)
            .field("device", &self.device)
            .field("dtype", &self.dtype)
            .field("algorithms", &self.algorithms)
            .finish()
    }
}

impl Model {
    /// Opens a weights file (safetensors or zip-format `.pth`) and builds the network it holds.
    pub fn load(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<Self> {
        Self::from_checkpoint(Checkpoint::open_with(path, opts.state_key())?, opts)
    }

    /// Builds the network a checkpoint holds, after checking that every tensor is used and
    /// has the right shape.
    pub fn from_checkpoint(checkpoint: Checkpoint, opts: &LoadOptions) -> Result<Self> {
        if !matches!(opts.dtype, DType::F32 | DType::F64) {
            return Err(Error::BadInput {
                shape: vec![],
                reason: format!("fmv computes in f32 or f64, not {:?}", opts.dtype),
            });
        }
        if let Some(name) = opts.arch()
            && !ARCH_NAMES.contains(&name)
        {
            return Err(Error::UnknownArch {
                name: name.to_string(),
                valid: ARCH_NAMES.join(", "),
            });
        }
        let arch =
            Arch::infer_with_head(checkpoint.entries(), opts.head.as_ref()).ok_or_else(|| {
                Error::UnrecognizedArchitecture {
                    path: checkpoint.path().to_path_buf(),
                    sample: checkpoint
                        .entries()
                        .keys()
                        .take(5)
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                }
            })?;
        // A depth asked for that the file does not show: the file was meant to be it (and lacks
        // whole blocks or layers, which the check names), or it is another network.
        let arch = match opts.arch() {
            Some(requested) if requested != arch.name() => {
                arch.with_depth(requested)
                    .ok_or_else(|| Error::ArchMismatch {
                        path: checkpoint.path().to_path_buf(),
                        requested: requested.to_string(),
                        found: arch.name(),
                    })?
            }
            _ => arch,
        };
        // A stated layout must fit: a head that does not, or no head at all, is the user's
        // mistake, said at once.
        if let Some(layout) = opts.head() {
            let unfit = match arch.head() {
                HeadState::Unusable { reason, prefix } => Some((prefix.clone(), reason.clone())),
                HeadState::Absent => Some((
                    arch.head_prefix().to_string(),
                    format!(
                        "the file has no tensors under `{}.`: it has no classifier",
                        arch.head_prefix()
                    ),
                )),
                HeadState::Ready(_) => None,
            };
            if let Some((prefix, reason)) = unfit {
                return Err(Error::UnusableHead {
                    path: checkpoint.path().to_path_buf(),
                    prefix,
                    reason,
                    stated: Some(layout.to_string()),
                });
            }
        }
        check_tensors(&checkpoint, &arch)?;
        let (device, dtype) = (&opts.device, opts.dtype);
        let algorithms = Algorithms {
            conv: opts.algorithms.conv.effective(device, dtype),
            ..opts.algorithms
        };
        let build = Build {
            device,
            dtype,
            algorithms,
        };
        let (net, mut layers) = match &arch {
            Arch::ResNet(c) => (
                Net::ResNet(ResNet::load(&checkpoint, c, build)?),
                ResNet::layers(c),
            ),
            Arch::Vgg(c) => (Net::Vgg(Vgg::load(&checkpoint, c, build)?), Vgg::layers(c)),
        };
        if let Some(n) = arch.head().num_classes() {
            layers.push(LayerInfo {
                name: "logits".into(),
                kind: LayerKind::Logits,
                channels: n,
            });
        }
        checkpoint.release_pages();
        Ok(Model {
            arch,
            algorithms,
            net,
            layers,
            checkpoint: Arc::new(checkpoint),
            head: Mutex::new(None),
            device: device.clone(),
            dtype,
        })
    }

    /// The architecture, with its widths.
    pub fn arch(&self) -> &Arch {
        &self.arch
    }

    fn build(&self) -> Build<'_> {
        Build {
            device: &self.device,
            dtype: self.dtype,
            algorithms: self.algorithms,
        }
    }

    /// Every tensor the network computes with (BatchNorm folded; the classifier's only once it
    /// has been loaded). None of them is ever a `Var`, and gradients never reach them.
    pub fn weights(&self) -> Vec<Tensor> {
        let mut out: Vec<Tensor> = match &self.net {
            Net::ResNet(n) => n.tensors().into_iter().cloned().collect(),
            Net::Vgg(n) => n.tensors().into_iter().cloned().collect(),
        };
        let head = self.head.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(h) = head {
            out.extend(h.tensors().into_iter().cloned());
        }
        out
    }

    /// The checkpoint the weights came from.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    fn head(&self) -> Result<Arc<Classifier>> {
        let mut slot = self.head.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = slot.as_ref() {
            return Ok(h.clone());
        }
        let Some(spec) = self.arch.head().ready() else {
            return Err(self.no_logits());
        };
        let head = Arc::new(Classifier::load(&self.checkpoint, spec, self.build())?);
        *slot = Some(head.clone());
        Ok(head)
    }

    /// Why there are no `logits`: a head that cannot be interpreted, or none.
    fn no_logits(&self) -> Error {
        match self.arch.head() {
            HeadState::Unusable { prefix, reason } => Error::UnusableHead {
                path: self.checkpoint.path().to_path_buf(),
                prefix: prefix.clone(),
                reason: reason.clone(),
                stated: None,
            },
            _ => Error::NoHead {
                path: self.checkpoint.path().to_path_buf(),
                prefix: self.arch.head_prefix(),
            },
        }
    }

    /// A pass that starts at tap `start`: `x` must have that tap's channels and dtype, and the
    /// taps asked for (and the one zeroed) must not come before it.
    fn check_tap_input(
        &self,
        x: &Tensor,
        start: LayerId,
        taps: &[LayerId],
        pass: &Pass,
    ) -> Result<()> {
        let info = &self.layers[start.0];
        let bad = |reason: String| Error::BadInput {
            shape: x.dims().to_vec(),
            reason,
        };
        let rank = if info.kind == LayerKind::Logits { 2 } else { 4 };
        if x.rank() != rank || x.dim(1).ok() != Some(info.channels) {
            return Err(bad(format!(
                "a pass from `{}` starts from its value, {} with {} channels",
                info.name,
                if rank == 2 { "N×C" } else { "N×C×h×w" },
                info.channels
            )));
        }
        if x.dtype() != self.dtype {
            return Err(bad(format!(
                "expected {:?} values, got {:?}",
                self.dtype,
                x.dtype()
            )));
        }
        let earlier = taps
            .iter()
            .copied()
            .chain(pass.zeroed().map(|(l, _)| l))
            .find(|t| t.0 < start.0);
        if let Some(t) = earlier {
            return Err(bad(format!(
                "`{}` comes before `{}`, where this pass starts",
                self.layers[t.0].name, info.name
            )));
        }
        Ok(())
    }

    fn check_input(&self, x: &Tensor, deepest: LayerId) -> Result<()> {
        let bad = |reason: String| Error::BadInput {
            shape: x.dims().to_vec(),
            reason,
        };
        let (_, c, h, w) = x.dims4().map_err(|_| bad("expected N×3×H×W".into()))?;
        if c != 3 {
            return Err(bad(format!("expected 3 colour channels, got {c}")));
        }
        if x.dtype() != self.dtype {
            return Err(bad(format!(
                "expected {:?} values, got {:?}",
                self.dtype,
                x.dtype()
            )));
        }
        let sizes = self.spatial_sizes(h, w);
        if let Some(empty) = sizes[..=deepest.0].iter().position(Option::is_none) {
            let min = (1..=4096)
                .find(|&n| {
                    self.spatial_sizes(n, n)[..=deepest.0]
                        .iter()
                        .all(Option::is_some)
                })
                .unwrap_or(4096);
            return Err(bad(format!(
                "`{}` would be empty at {h}×{w}; this network needs at least {min}×{min} pixels to reach `{}`",
                self.layers[empty].name, self.layers[deepest.0].name
            )));
        }
        Ok(())
    }
}

impl Backbone for Model {
    fn arch_name(&self) -> String {
        self.arch.name()
    }

    fn family(&self) -> Family {
        match self.arch {
            Arch::ResNet(_) => Family::ResNet,
            Arch::Vgg(_) => Family::Vgg,
        }
    }

    fn layers(&self) -> &[LayerInfo] {
        &self.layers
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn dtype(&self) -> DType {
        self.dtype
    }

    fn spatial_sizes(&self, h: usize, w: usize) -> Vec<Option<(usize, usize)>> {
        let mut sizes = match &self.arch {
            Arch::ResNet(c) => ResNet::spatial_sizes(c, h, w),
            Arch::Vgg(c) => Vgg::spatial_sizes(c, h, w),
        };
        if self.layers.len() > sizes.len() {
            let reach = sizes.last().copied().flatten();
            sizes.push(reach.map(|_| (1, 1)));
        }
        sizes
    }

    fn resolve_compat(&self, index: i64) -> Result<LayerId> {
        let (candidates, what): (Vec<&str>, &'static str) = match &self.arch {
            Arch::ResNet(c) => {
                let s = c.stages.len();
                let prefix = format!("layer{s}.");
                (
                    self.layers
                        .iter()
                        .filter(|l| l.kind == LayerKind::Block && l.name.starts_with(&prefix))
                        .map(|l| l.name.as_str())
                        .collect(),
                    "blocks in its last stage",
                )
            }
            Arch::Vgg(_) => (
                self.layers
                    .iter()
                    .filter(|l| l.kind == LayerKind::Conv)
                    .map(|l| l.name.as_str())
                    .collect(),
                "convolutions",
            ),
        };
        let len = candidates.len() as i64;
        let pos = if index < 0 { len + index } else { index };
        if !(0..len).contains(&pos) {
            return Err(Error::LayerIndexOutOfRange {
                index,
                arch: self.arch.name(),
                len: candidates.len(),
                what,
                min: -len,
                max: len - 1,
            });
        }
        self.resolve(&LayerRef::Name(candidates[pos as usize].to_string()))
    }

    fn provenance(&self) -> Result<Provenance> {
        self.checkpoint.provenance()
    }

    /// As the trait's, and `logits` without a usable head is an error that says why.
    fn resolve(&self, layer: &LayerRef) -> Result<LayerId> {
        match layer {
            LayerRef::Name(n) if n == "logits" && self.arch.head().ready().is_none() => {
                Err(self.no_logits())
            }
            LayerRef::Compat(i) => self.resolve_compat(*i),
            LayerRef::Name(name) => resolve_name(self.layers(), name),
        }
    }

    /// The convolution's as it runs on the model's device: on other devices than the CPU,
    /// [`ConvAlgorithm::Candle`].
    fn algorithms(&self) -> Algorithms {
        self.algorithms
    }

    fn forward_pass(&self, x: &Tensor, pass: &Pass, taps: &[LayerId]) -> Result<Vec<Tensor>> {
        let Some(deepest) = taps.iter().copied().max() else {
            return Ok(Vec::new());
        };
        let unknown = |id: LayerId| Error::UnknownLayer {
            name: format!("#{}", id.0),
            valid: format!("ids 0..{}", self.layers.len()),
        };
        for id in [
            Some(deepest),
            pass.start(),
            pass.zeroed().map(|(l, _)| l),
            pass.selected().map(|(l, _)| l),
        ]
        .into_iter()
        .flatten()
        {
            if id.0 >= self.layers.len() {
                return Err(unknown(id));
            }
        }
        match pass.start() {
            None => self.check_input(x, deepest)?,
            Some(start) => self.check_tap_input(x, start, taps, pass)?,
        }
        if let Some((layer, channels)) = pass.zeroed() {
            check_channels(x, &self.layers[layer.0], channels, "zero")?;
        }
        if let Some((layer, channels)) = pass.selected() {
            let info = &self.layers[layer.0];
            if channels.is_empty() {
                return Err(Error::BadInput {
                    shape: x.dims().to_vec(),
                    reason: format!("no channel of `{}` selected", info.name),
                });
            }
            check_channels(x, info, channels, "select")?;
        }
        let mut tapper = Tapper::new(taps, pass);
        let features = match &self.net {
            Net::ResNet(n) => n.forward(x, &mut tapper),
            Net::Vgg(n) => n.forward(x, &mut tapper),
        }
        .op("forward pass")?;
        if let Some(features) = features {
            let mut logits = self.head()?.forward(&features).op("classifier")?;
            tapper.emit(&mut logits).op("forward pass")?;
        }
        Ok(tapper.finish())
    }
}

/// Every channel of `channels` is one of the tap `info`'s, or the error saying which is not and
/// what the pass would have done with it (`action`: "zero", "select").
fn check_channels(x: &Tensor, info: &LayerInfo, channels: &[usize], action: &str) -> Result<()> {
    match channels.iter().find(|&&c| c >= info.channels) {
        None => Ok(()),
        Some(&c) => Err(Error::BadInput {
            shape: x.dims().to_vec(),
            reason: format!(
                "cannot {action} channel {c} of `{}`, which has {} channels (0..={})",
                info.name,
                info.channels,
                info.channels - 1
            ),
        }),
    }
}

/// Every tensor of the checkpoint must be one the architecture uses, with its shape; every
/// tensor the architecture needs must be there. The tensors of a head that cannot be
/// interpreted are left to `logits`, which name them.
fn check_tensors(ck: &Checkpoint, arch: &Arch) -> Result<()> {
    let expected = arch.expected_tensors();
    let path = || ck.path().to_path_buf();
    let known: std::collections::HashSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
    let unusable_head = match arch.head() {
        HeadState::Unusable { prefix, .. } => Some(format!("{prefix}.")),
        _ => None,
    };
    let unexpected: Vec<(String, Vec<usize>)> = ck
        .entries()
        .iter()
        .filter(|(name, _)| {
            !known.contains(name.as_str())
                && !name
                    .strip_suffix(".num_batches_tracked")
                    .is_some_and(|bn| known.contains(format!("{bn}.running_mean").as_str()))
                && !unusable_head.as_ref().is_some_and(|p| name.starts_with(p))
        })
        .map(|(_, e)| (e.file_key.clone(), e.shape.clone()))
        .collect();
    let mut missing = Vec::new();
    for (name, shape) in &expected {
        match ck.entries().get(name) {
            None => missing.push((name.clone(), shape.clone())),
            Some(e) if &e.shape != shape => {
                return Err(Error::ShapeMismatch {
                    path: path(),
                    key: e.file_key.clone(),
                    arch: arch.description(),
                    expected: shape.clone(),
                    found: e.shape.clone(),
                });
            }
            // Every shape matches the architecture's; a dimension of 0 is a layer without
            // channels (or a head without classes), which no network computes with.
            Some(e) if e.shape.contains(&0) => {
                return Err(Error::BadTensor {
                    path: path(),
                    key: e.file_key.clone(),
                    reason: format!(
                        "its shape {:?} has a dimension of 0: a layer without channels or a head \
                         without classes",
                        e.shape
                    ),
                });
            }
            Some(_) => {}
        }
    }
    if !missing.is_empty() {
        return Err(Error::MissingTensors {
            path: path(),
            arch: arch.name(),
            scheme: ck.scheme().as_str(),
            missing,
            unexpected,
        });
    }
    if !unexpected.is_empty() {
        return Err(Error::UnexpectedTensors {
            path: path(),
            arch: arch.name(),
            scheme: ck.scheme().as_str(),
            unexpected,
        });
    }
    Ok(())
}

/// Parses `cpu`, `cuda`, `cuda:N` or `metal` into a device; a backend this build lacks is an
/// error that says how to get it.
pub fn parse_device(spec: &str) -> Result<Device> {
    let unavailable = |reason: String| Error::DeviceUnavailable {
        device: spec.to_string(),
        reason,
    };
    let spec_l = spec.trim().to_ascii_lowercase();
    if spec_l == "cpu" {
        return Ok(Device::Cpu);
    }
    if let Some(rest) = spec_l.strip_prefix("cuda") {
        let ordinal = match rest.strip_prefix(':') {
            None if rest.is_empty() => 0,
            Some(n) => n.parse::<usize>().map_err(|_| {
                unavailable("expected `cuda` or `cuda:N` with N a GPU number".into())
            })?,
            None => {
                return Err(unavailable(
                    "expected `cpu`, `cuda`, `cuda:N` or `metal`".into(),
                ));
            }
        };
        if !cfg!(feature = "cuda") {
            return Err(unavailable(
                "this fmv was built without CUDA support; rebuild with `cargo build --release --features cuda` (needs nvcc)".into(),
            ));
        }
        return Device::new_cuda(ordinal)
            .map_err(|e| unavailable(crate::error::plain(e).to_string()));
    }
    if spec_l == "metal" {
        if !cfg!(feature = "metal") {
            return Err(unavailable(
                "this fmv was built without Metal support; rebuild with `cargo build --release --features metal` on macOS".into(),
            ));
        }
        return Device::new_metal(0).map_err(|e| unavailable(crate::error::plain(e).to_string()));
    }
    Err(unavailable(
        "expected `cpu`, `cuda`, `cuda:N` or `metal`".into(),
    ))
}
