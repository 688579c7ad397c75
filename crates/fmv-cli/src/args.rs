//! Options shared by several subcommands, each parsed by clap into its type: the network, the
//! layer, the preprocessing.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use fmv::core::TimmConfig;
use fmv::core::pixels::Interpolation;
use fmv::models::demo::DemoNet;
use fmv::models::{ARCH_NAMES, HeadLayout, parse_device};
use fmv::{Backbone, Device, LayerRef, LoadOptions, Model, Preprocess, Visualizer};

/// Which network to load, and where to run it.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Weights file: safetensors or a zip-format PyTorch `.pth` (this or --model is required).
    #[arg(long, value_name = "FILE", conflicts_with = "model")]
    pub weights: Option<PathBuf>,
    /// A named network instead of --weights: `demo-resnet` or `demo-vgg` (embedded), or a
    /// name from models/manifest.json fetched with `cargo xtask fetch NAME` (resnet50, vgg16,
    /// ...), looked up in $FMV_MODELS, ./models and the models folder of fmv's checkout.
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
    /// Architecture: `auto` (the default) infers it from the file; a name (resnet18/34/50/101/152,
    /// vgg11/13/16/19 with optional `_bn`) is checked against the file.
    #[arg(long, value_name = "ARCH", value_parser = arch_names(), hide_possible_values = true)]
    pub arch: Option<String>,
    /// Where to compute: cpu (the default), cuda, cuda:N or metal.
    #[arg(long, value_name = "DEVICE", value_parser = parse_device)]
    pub device: Option<Device>,
    /// The classifier head's modules, one per index of its Sequential, comma-separated:
    /// linear, batchnorm (bn), relu, gelu, gelu_tanh, silu, tanh, sigmoid, dropout (identity).
    /// E.g. `linear,relu,dropout,linear` for `fc.0`/`fc.3`. By default, torchvision's
    /// convention: a ReLU between two layers, Dropouts in the rest of a gap.
    #[arg(long, value_name = "LAYOUT", value_parser = parse_head)]
    pub head: Option<HeadLayout>,
    /// The top-level key of a `.pth` to read the weights from: an EMA copy (`state_dict_ema`,
    /// `model_ema`) instead of the trained weights fmv reads by default (`state_dict`, `model`).
    #[arg(long, value_name = "KEY")]
    pub state_key: Option<String>,
    /// A timm `config.json` (its `pretrained_cfg` sets the default preprocessing, its
    /// `label_names` the class names). By default, a `config.json` beside --weights that has
    /// a `pretrained_cfg`.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Names of the classifier's outputs, in order: one per line, or a JSON list. Used for
    /// `logits`; by default, the config's `label_names`, else indices.
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,
}

/// `--head`: a layout such as `linear,relu,linear`.
fn parse_head(s: &str) -> Result<HeadLayout, String> {
    s.parse()
}

/// `auto` and every architecture name, for `--arch`.
fn arch_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(
        std::iter::once("auto").chain(ARCH_NAMES.iter().copied()),
    )
}

/// Where a network's weights come from.
#[derive(Debug, Clone)]
pub enum WeightsSource {
    /// A file.
    File(PathBuf),
    /// An embedded demo network.
    Demo(DemoNet),
}

/// The manifest of fetchable models, compiled in so that `--model` can name them offline.
const MANIFEST: &str = include_str!("../../../models/manifest.json");

/// The folders `--model NAME` looks in, in order.
fn model_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("FMV_MODELS") {
        dirs.push(PathBuf::from(d));
    }
    dirs.push(PathBuf::from("models"));
    // target/{debug,release}/fmv in a checkout: the checkout's models/.
    if let Ok(exe) = std::env::current_exe()
        && let Some(root) = exe.parent().and_then(Path::parent).and_then(Path::parent)
    {
        dirs.push(root.join("models"));
    }
    dirs
}

/// The names in `models/manifest.json`.
#[derive(serde::Deserialize)]
struct Manifest {
    models: Vec<ManifestModel>,
}

/// One model of `models/manifest.json` (the fields `--model` reads).
#[derive(serde::Deserialize)]
struct ManifestModel {
    name: String,
}

/// Resolves `--model NAME`.
fn named_model(name: &str) -> Result<WeightsSource> {
    if let Some(demo) = name.strip_prefix("demo-").and_then(DemoNet::from_name) {
        return Ok(WeightsSource::Demo(demo));
    }
    let manifest: Manifest =
        serde_json::from_str(MANIFEST).context("models/manifest.json is not valid")?;
    let known: Vec<&str> = manifest.models.iter().map(|m| m.name.as_str()).collect();
    if !known.contains(&name) {
        bail!(
            "unknown --model `{name}`: use demo-resnet, demo-vgg or one of {}",
            known.join(", ")
        );
    }
    let file = format!("{name}.safetensors");
    model_dirs()
        .into_iter()
        .map(|d| d.join(&file))
        .find(|p| p.is_file())
        .map(WeightsSource::File)
        .with_context(|| {
            format!(
                "model `{name}` is not fetched: run `cargo xtask fetch {name}` in fmv's checkout, or place the file at models/{file} (or in $FMV_MODELS)"
            )
        })
}

impl ModelArgs {
    /// Where the weights come from; the absence of both options is an error naming them.
    pub fn source(&self) -> Result<WeightsSource> {
        match (&self.weights, &self.model) {
            (Some(w), _) => Ok(WeightsSource::File(w.clone())),
            (None, Some(name)) => named_model(name),
            (None, None) => bail!(
                "--weights FILE (a safetensors or .pth checkpoint) or --model NAME is required"
            ),
        }
    }

    /// The command's inputs with the weights file among them (when the network is a file),
    /// and the config and labels files.
    pub fn inputs(&self) -> crate::guard::Inputs {
        let mut inputs = crate::guard::Inputs::new();
        if let Ok(WeightsSource::File(p)) = self.source() {
            inputs = inputs.add(&p, "--weights");
        }
        if let Some(p) = &self.config {
            inputs = inputs.add(p, "--config");
        }
        if let Some(p) = &self.labels {
            inputs = inputs.add(p, "--labels");
        }
        inputs
    }

    /// The timm configuration: `--config`, or a timm `config.json` beside the weights file.
    pub fn config(&self) -> Result<Option<TimmConfig>> {
        if let Some(path) = &self.config {
            return Ok(Some(TimmConfig::from_file(path)?));
        }
        match self.source() {
            Ok(WeightsSource::File(w)) => Ok(TimmConfig::beside(&w)?),
            _ => Ok(None),
        }
    }

    /// The names of the model's outputs: `--labels`, or the config's `label_names`, checked
    /// against the head's width; `None` without either, or for a network without logits.
    pub fn labels(&self, model: &Model) -> Result<Option<Vec<String>>> {
        let (names, source) = match (&self.labels, self.config()?) {
            (Some(path), _) => (fmv::core::read_labels(path)?, path.clone()),
            (None, Some(cfg)) => match cfg.label_names() {
                Some(names) => (names.to_vec(), cfg.path().to_path_buf()),
                None => return Ok(None),
            },
            (None, None) => return Ok(None),
        };
        let Some(logits) = model.layers().iter().find(|l| l.name == "logits") else {
            if self.labels.is_some() {
                bail!(
                    "--labels names the classifier's outputs, and this network has no usable \
                     classifier (see `fmv layers`)"
                );
            }
            return Ok(None);
        };
        fmv::core::check_labels(&names, logits.channels, &source)?;
        Ok(Some(names))
    }

    /// Whether a network was named at all.
    pub fn given(&self) -> bool {
        self.weights.is_some() || self.model.is_some()
    }

    /// The device, the CPU unless `--device` says otherwise.
    pub fn device(&self) -> Device {
        self.device.clone().unwrap_or(Device::Cpu)
    }

    /// Loads the network.
    pub fn load(&self) -> Result<Model> {
        let mut opts = load_options()?
            .with_arch(self.arch.as_deref().unwrap_or("auto"))
            .with_device(self.device());
        if let Some(head) = &self.head {
            opts = opts.with_head(head.clone());
        }
        if let Some(key) = &self.state_key {
            opts = opts.with_state_key(key.clone());
        }
        Ok(match self.source()? {
            WeightsSource::File(p) => Model::load(p, &opts)?,
            WeightsSource::Demo(d) => d.load(&opts)?,
        })
    }
}

/// Load options with the algorithms the environment names: `FMV_CONV`
/// (`winograd`, the default; `winograd2`, `winograd4`, `gemm`, `candle`) and `FMV_INPUT_GRAD`
/// (`flipped`, the default; `transposed`), for comparing fmv's kernels.
pub fn load_options() -> Result<LoadOptions> {
    let var = |name: &str| std::env::var(name).ok();
    let algorithms =
        fmv::Algorithms::from_names(var("FMV_CONV").as_deref(), var("FMV_INPUT_GRAD").as_deref())
            .context("invalid FMV_CONV or FMV_INPUT_GRAD")?;
    Ok(LoadOptions::new()
        .with_conv_algorithm(algorithms.conv)
        .with_input_grad_algorithm(algorithms.input_grad))
}

/// The one parser of a layer argument: a name (`layer4.1`, `features.28`, `logits`) or the
/// original package's integer.
pub fn layer(s: &str) -> Result<LayerRef, std::convert::Infallible> {
    s.parse()
}

/// The layer whose maps a command reads.
#[derive(Debug, Clone, Args)]
pub struct LayerArg {
    /// Layer: a name (`layer4.1`, `features.28`, `logits`; see `fmv layers`) or the original
    /// package's integer (ResNet: block of the last stage, `-2` = second-to-last; VGG: n-th conv).
    #[arg(long = "layer", allow_hyphen_values = true, value_name = "LAYER", value_parser = layer)]
    pub layer: LayerRef,
}

/// A preprocessing preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Preset {
    // ImageNet mean/std normalisation, for pretrained weights.
    Imagenet,
    // FeatureMapVisualizer's: inputs in [0, 1].
    Original,
    // torchvision's eval transform: Resize(256), CenterCrop(224), ImageNet mean/std.
    Torchvision,
}

/// A resampling filter, for `--interpolation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Filter {
    // Pillow's bilinear (torchvision's default).
    Bilinear,
    // Pillow's bicubic (timm's usual).
    Bicubic,
}

/// How images become inputs.
#[derive(Debug, Clone, Args)]
pub struct PreprocessArgs {
    /// Preprocessing preset: `imagenet` (squash to 224, mean/std normalisation), `original`
    /// (FeatureMapVisualizer's: squash, inputs in [0, 1]) or `torchvision` (its eval
    /// transform: the shorter side to 256, centre crop 224, mean/std). Default: the timm
    /// config's (--config), else `imagenet`.
    #[arg(long, value_name = "PRESET", value_enum)]
    pub preprocess: Option<Preset>,
    /// Input size: `N` or `WxH` (images are squashed to it). Default: 224.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub size: Option<(usize, usize)>,
    /// Resize the shorter side to N pixels (aspect ratio kept), then crop the centre to
    /// --crop: torchvision's `Resize(N)`. Default: 256 with `torchvision`.
    #[arg(long, value_name = "N", value_parser = parse_positive)]
    pub resize: Option<usize>,
    /// The centre crop after --resize: `N` or `WxH` (torchvision's `CenterCrop`; zero-padded
    /// where the image is smaller). Default: 224.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub crop: Option<(usize, usize)>,
    /// Resampling filter: `bilinear` (the default) or `bicubic`, Pillow's either way.
    #[arg(long, value_name = "FILTER", value_enum)]
    pub interpolation: Option<Filter>,
    /// Per-channel mean subtracted after /255, as `R,G,B`. Default: the preset's.
    #[arg(long, value_name = "R,G,B", value_parser = parse_triple)]
    pub mean: Option<[f32; 3]>,
    /// Per-channel standard deviation, as `R,G,B`. Default: the preset's.
    #[arg(long, value_name = "R,G,B", value_parser = parse_triple)]
    pub std: Option<[f32; 3]>,
    /// Images per forward pass. Default: 8 on the CPU, 32 on a GPU. Results do not depend on it.
    #[arg(long, value_name = "N")]
    pub batch_size: Option<NonZeroUsize>,
}

impl PreprocessArgs {
    /// The preprocessing these options describe, starting from the model's timm config when
    /// no preset is named.
    pub fn build(&self, model: &ModelArgs) -> Result<Preprocess> {
        let mut p = match self.preprocess {
            Some(Preset::Imagenet) => Preprocess::imagenet(),
            Some(Preset::Original) => Preprocess::original(),
            Some(Preset::Torchvision) => Preprocess::torchvision(),
            None => match model.config()? {
                Some(cfg) => {
                    let p = cfg.preprocess()?;
                    eprintln!(
                        "note: preprocessing from {}: {} (--preprocess overrides it)",
                        cfg.path().display(),
                        p.name()
                    );
                    p
                }
                None => Preprocess::imagenet(),
            },
        };
        if let Some(n) = self.resize {
            p = p.with_resize(n);
        }
        let crops = p.resize_to().is_some();
        if let Some((w, h)) = self.size {
            if crops {
                bail!(
                    "--size squashes images to a size, and this preprocessing resizes their \
                     shorter side and crops the centre: set that size with --crop"
                );
            }
            p = p.with_size(w, h);
        }
        if let Some((w, h)) = self.crop {
            if !crops {
                bail!(
                    "--crop crops the centre after --resize (or --preprocess torchvision); with \
                     squashed images, set the size with --size"
                );
            }
            p = p.with_crop(w, h);
        }
        if let Some(f) = self.interpolation {
            p = p.with_interpolation(match f {
                Filter::Bilinear => Interpolation::Bilinear,
                Filter::Bicubic => Interpolation::Bicubic,
            });
        }
        if let Some(m) = self.mean {
            p = p.with_mean(m);
        }
        if let Some(s) = self.std {
            p = p.with_std(s);
        }
        p.validate()?;
        Ok(p)
    }

    /// The visualiser of a loaded model with this preprocessing (`preprocess`, which a command
    /// may have changed) and `--batch-size` if given.
    pub fn visualizer(&self, model: Model, preprocess: Preprocess) -> Visualizer {
        let viz = Visualizer::new(model).with_preprocess(preprocess);
        match self.batch_size {
            Some(b) => viz.with_batch_size(b.get()),
            None => viz,
        }
    }
}

/// `N` or `WxH`, each at least 1.
fn parse_size(s: &str) -> Result<(usize, usize)> {
    let parse = |t: &str| {
        t.trim()
            .parse::<usize>()
            .context("expected a positive integer")
    };
    let (w, h) = match s.split_once(['x', 'X']) {
        Some((w, h)) => (parse(w)?, parse(h)?),
        None => {
            let n = parse(s)?;
            (n, n)
        }
    };
    if w == 0 || h == 0 {
        bail!("the size must be at least 1x1");
    }
    Ok((w, h))
}

/// A positive integer.
fn parse_positive(s: &str) -> Result<usize> {
    match s.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => bail!("expected a positive integer"),
    }
}

/// `R,G,B`: three numbers.
fn parse_triple(s: &str) -> Result<[f32; 3]> {
    let v: Vec<f32> = s
        .split(',')
        .map(|t| {
            t.trim()
                .parse::<f32>()
                .context("expected three numbers `R,G,B`")
        })
        .collect::<Result<_>>()?;
    match v.as_slice() {
        [a, b, c] => Ok([*a, *b, *c]),
        _ => bail!("expected three numbers `R,G,B`, got {}", v.len()),
    }
}

/// Prints one JSON document on stdout.
pub fn print_json(value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    println!("{text}");
    Ok(())
}

/// `I/N`, with the library's reason when it is not one.
pub fn parse_shard(s: &str) -> Result<fmv::Shard, String> {
    s.parse().map_err(|e: fmv::core::Error| match e {
        fmv::core::Error::InvalidConfig { problem, .. } => problem.to_string(),
        other => other.to_string(),
    })
}
