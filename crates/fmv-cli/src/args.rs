//! Options shared by several subcommands.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use fmv::models::{Model, parse_device};
use fmv::{LayerRef, LoadOptions, Preprocess};

/// Which network to load, and where to run it.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Weights file: safetensors or a zip-format PyTorch `.pth` (required).
    #[arg(long, value_name = "FILE")]
    pub weights: Option<PathBuf>,
    /// Architecture: `auto` (the default) infers it from the file; a name (resnet18/34/50/101/152,
    /// vgg11/13/16/19 with optional `_bn`) is checked against the file.
    #[arg(long, value_name = "ARCH")]
    pub arch: Option<String>,
    /// Where to compute: cpu (the default), cuda, cuda:N or metal.
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<String>,
}

impl ModelArgs {
    /// The weights file; its absence is an error naming the option.
    pub fn weights(&self) -> Result<&Path> {
        self.weights
            .as_deref()
            .context("--weights FILE is required (a safetensors or .pth checkpoint)")
    }

    /// Loads the network.
    pub fn load(&self) -> Result<Model> {
        let device = parse_device(self.device.as_deref().unwrap_or("cpu"))?;
        let opts = LoadOptions::new()
            .with_arch(self.arch.as_deref().unwrap_or("auto"))
            .with_device(device);
        Ok(Model::load(self.weights()?, &opts)?)
    }
}

/// The layer whose maps a command reads.
#[derive(Debug, Clone, Args)]
pub struct LayerArg {
    /// Layer: a name (`layer4.1`, `features.28`, `logits`; see `fmv layers`) or the original
    /// package's integer (ResNet: block of the last stage, `-2` = second-to-last; VGG: n-th conv).
    #[arg(long = "layer", allow_hyphen_values = true, value_name = "LAYER")]
    pub name: String,
}

impl LayerArg {
    /// The layer as fmv addresses it.
    pub fn get(&self) -> LayerRef {
        match self.name.parse() {
            Ok(l) => l,
            Err(never) => match never {},
        }
    }
}

/// How images become inputs.
#[derive(Debug, Clone, Args)]
pub struct PreprocessArgs {
    /// Preprocessing preset: `imagenet` (mean/std normalisation, for pretrained weights) or
    /// `original` (FeatureMapVisualizer's: inputs in [0, 1]).
    #[arg(long, default_value = "imagenet", value_name = "PRESET")]
    pub preprocess: String,
    /// Input size: `N` or `WxH` (images are squashed to it). Default: 224.
    #[arg(long, value_name = "SIZE")]
    pub size: Option<String>,
    /// Per-channel mean subtracted after /255, as `R,G,B`. Default: the preset's.
    #[arg(long, value_name = "R,G,B")]
    pub mean: Option<String>,
    /// Per-channel standard deviation, as `R,G,B`. Default: the preset's.
    #[arg(long, value_name = "R,G,B")]
    pub std: Option<String>,
    /// Images per forward pass. Default: 8 on the CPU, 32 on a GPU. Results do not depend on it.
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,
}

impl PreprocessArgs {
    /// The preprocessing these options describe.
    pub fn build(&self) -> Result<Preprocess> {
        let mut p = Preprocess::from_preset(&self.preprocess)?;
        if let Some(s) = &self.size {
            let (w, h) = parse_size(s).with_context(|| format!("invalid --size `{s}`"))?;
            p = p.with_size(w, h);
        }
        if let Some(m) = &self.mean {
            p = p.with_mean(parse_triple(m).with_context(|| format!("invalid --mean `{m}`"))?);
        }
        if let Some(s) = &self.std {
            p = p.with_std(parse_triple(s).with_context(|| format!("invalid --std `{s}`"))?);
        }
        p.validate()?;
        if self.batch_size == Some(0) {
            bail!("invalid --batch-size: must be at least 1");
        }
        Ok(p)
    }
}

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

/// The visualiser for a loaded model: this preprocessing, and `--batch-size` if given.
pub fn visualizer(
    model: Model,
    preprocess: fmv::Preprocess,
    args: &PreprocessArgs,
) -> fmv::Visualizer {
    let viz = fmv::Visualizer::new(model).with_preprocess(preprocess);
    match args.batch_size {
        Some(b) => viz.with_batch_size(b),
        None => viz,
    }
}

/// Prints one JSON document on stdout.
pub fn print_json(value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    println!("{text}");
    Ok(())
}
