//! `fmv patterns`: activation maximisation (viz 1).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use fmv::core::files::expand_inputs;
use fmv::core::pixels::{Gray16, load_rgb8};
use fmv::report::documents::show;
use fmv::{
    CompatConfig, MaxActivationsConfig, Mode, Objective, Pattern, PatternAlgorithm, PatternConfig,
    Preprocess, RobustConfig,
};
use serde::Serialize;

use crate::Outcome;
use crate::args::{LayerArg, ModelArgs, PreprocessArgs, print_json};
use crate::output::{encode_png, write_atomic};
use crate::session::Session;

/// `--mode`: which algorithm draws the pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    // Fourier/decorrelated parameterisation, random transformations, the model's normalisation.
    Robust,
    // FeatureMapVisualizer's algorithm step for step.
    Compat,
}

impl ModeArg {
    /// The library's mode.
    pub fn mode(self) -> Mode {
        match self {
            ModeArg::Robust => Mode::Robust,
            ModeArg::Compat => Mode::Compat,
        }
    }
}

/// `--objective`: what robust mode maximises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ObjectiveArg {
    // The map's mean.
    Channel,
    // The map's centre unit.
    Neuron,
}

/// Options of `fmv patterns`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    preprocess: PreprocessArgs,
    #[command(flatten)]
    layer: LayerArg,
    /// The channel to maximise, or several (comma-separated), optimised together in robust mode.
    #[arg(long, value_delimiter = ',', required = true, value_name = "K[,K...]")]
    filter: Vec<usize>,
    /// `robust` (default): Fourier/decorrelated parameterisation, random transformations, the
    /// model's normalisation; `compat`: FeatureMapVisualizer's algorithm step for step.
    #[arg(long, default_value = "robust", value_enum)]
    mode: ModeArg,
    /// Seed of fmv's random generator (initial image, transformations).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Compat: start from this 8-bit square image instead of a random one.
    #[arg(long, value_name = "PNG")]
    init_image: Option<PathBuf>,
    /// Compat: side of the initial random image [default: 33].
    #[arg(long)]
    init_size: Option<usize>,
    /// Adam's learning rate [default: 0.2 compat, 0.05 robust].
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f64>,
    /// Compat: optimisation steps per scale [default: 20].
    #[arg(long)]
    opt_steps: Option<usize>,
    /// Compat: number of scales [default: 20].
    #[arg(long)]
    upscaling_steps: Option<usize>,
    /// Compat: growth factor between scales [default: 1.2].
    #[arg(long, allow_negative_numbers = true)]
    upscaling_factor: Option<f64>,
    /// Robust: optimisation steps [default: 256]. A map stops earlier once its objective has
    /// stopped rising: at most 1 % from one window of 32 steps to the next, from step 64 and
    /// the first quarter on (the JSON's `steps` says how many it took).
    #[arg(long)]
    steps: Option<usize>,
    /// Robust: take every one of --steps, even after a map's objective stopped rising.
    #[arg(long)]
    all_steps: bool,
    /// Robust: maximise the map's mean (`channel`) or its centre unit (`neuron`) [default: channel].
    #[arg(long, value_enum)]
    objective: Option<ObjectiveArg>,
    /// Report how the pattern's activation compares with the highest over these images.
    #[arg(long, value_name = "DIR")]
    reference_images: Option<PathBuf>,
    /// Output PNG (a name ending in anything but `.png` is refused); with several filters,
    /// `OUT_K.png` for each filter K.
    #[arg(short = 'o', long = "output", value_name = "OUT.png")]
    output: PathBuf,
    /// Print one JSON document on stdout (an array with several filters).
    #[arg(long)]
    json: bool,
}

fn output_for(out: &Path, filter: usize, several: bool) -> PathBuf {
    if !several {
        return out.to_path_buf();
    }
    let stem = out.file_stem().unwrap_or_default().to_string_lossy();
    let ext = out
        .extension()
        .map_or("png".into(), |e| e.to_string_lossy().into_owned());
    out.with_file_name(format!("{stem}_{filter}.{ext}"))
}

impl PatternDocument {
    /// Whether the objective was 0 at every step and at the end: the map never fired, so the
    /// image never changed.
    fn never_fired(&self) -> bool {
        self.final_activation == 0.0 && self.activation_trace.iter().all(|&v| v == 0.0)
    }
}

/// One pattern in `fmv patterns --json`.
#[derive(Serialize)]
struct PatternDocument {
    layer: String,
    filter: usize,
    mode: String,
    seed: u64,
    /// The optimisation steps taken (robust mode stops a map on a plateau).
    steps: usize,
    activation_trace: Vec<f64>,
    final_activation: f64,
    width: usize,
    height: usize,
    output: String,
    interrupted: bool,
    /// With `--reference-images`: the highest value of the objective over those images.
    #[serde(skip_serializing_if = "Option::is_none")]
    reference_max_activation: Option<f64>,
    /// With `--reference-images`: the pattern's activation over that (null unless positive).
    #[serde(skip_serializing_if = "Option::is_none")]
    ratio_to_reference: Option<Option<f64>>,
}

impl PatternDocument {
    fn new(p: &Pattern, out: &Path, reference: Option<f32>) -> Self {
        PatternDocument {
            layer: p.layer.clone(),
            filter: p.filter,
            mode: p.mode.clone(),
            seed: p.seed,
            steps: p.steps(),
            activation_trace: p.activation_trace.clone(),
            final_activation: p.final_activation,
            width: p.width,
            height: p.height,
            output: show(out),
            interrupted: p.interrupted,
            reference_max_activation: reference.map(f64::from),
            ratio_to_reference: reference.map(|r| (r > 0.0).then(|| p.final_activation / r as f64)),
        }
    }
}

/// The algorithm and its settings, from the flags of its mode (those of the other mode are
/// refused by name).
fn algorithm(args: &Args) -> Result<PatternAlgorithm> {
    let mode = args.mode.mode();
    let compat_only = [
        ("--init-image", args.init_image.is_some()),
        ("--init-size", args.init_size.is_some()),
        ("--opt-steps", args.opt_steps.is_some()),
        ("--upscaling-steps", args.upscaling_steps.is_some()),
        ("--upscaling-factor", args.upscaling_factor.is_some()),
    ];
    let robust_only = [
        ("--steps", args.steps.is_some()),
        ("--all-steps", args.all_steps),
        ("--objective", args.objective.is_some()),
    ];
    let (wrong, other) = match mode {
        Mode::Robust => (&compat_only[..], "compat"),
        Mode::Compat => (&robust_only[..], "robust"),
    };
    if let Some((flag, _)) = wrong.iter().find(|(_, given)| *given) {
        bail!(
            "{flag} applies to --mode {other}, not --mode {}",
            mode.as_str()
        );
    }
    Ok(match mode {
        Mode::Compat => {
            let init = args
                .init_image
                .as_ref()
                .map(|p| load_rgb8(p, Gray16::HighByte))
                .transpose()?;
            let mut c = CompatConfig::new().with_init_image(init);
            if let Some(v) = args.init_size {
                c = c.with_init_size(v);
            }
            if let Some(v) = args.lr {
                c = c.with_lr(v);
            }
            if let Some(v) = args.opt_steps {
                c = c.with_opt_steps(v);
            }
            if let Some(v) = args.upscaling_steps {
                c = c.with_upscaling_steps(v);
            }
            if let Some(v) = args.upscaling_factor {
                c = c.with_upscaling_factor(v);
            }
            c.into()
        }
        Mode::Robust => {
            let mut r = RobustConfig::new().with_objective(objective(args));
            if let Some(v) = args.lr {
                r = r.with_lr(v);
            }
            if let Some(v) = args.steps {
                r = r.with_steps(v);
            }
            if args.all_steps {
                r = r.with_plateau(None);
            }
            r.into()
        }
    })
}

/// What robust mode maximises (and what `--reference-images` compares).
fn objective(args: &Args) -> Objective {
    match args.objective {
        Some(ObjectiveArg::Neuron) => Objective::Neuron,
        _ => Objective::Channel,
    }
}

pub fn run(args: Args) -> Result<Outcome> {
    let mut inputs = args.model.inputs();
    if let Some(init) = &args.init_image {
        inputs = inputs.add(init, "--init-image");
    }
    if let Some(refs) = &args.reference_images {
        inputs = inputs.add(refs, "--reference-images");
    }
    // `OUT.png`, and `OUT_K.png` for each filter when there are several (a run stopped
    // after its first filter writes `OUT.png`).
    inputs.refuse_file(&args.output, "--output")?;
    for &f in args.filter.iter().filter(|_| args.filter.len() > 1) {
        inputs.refuse_file(&output_for(&args.output, f, true), "--output")?;
    }
    let algorithm = algorithm(&args)?;
    let mode = algorithm.mode();
    if let Some(ext) = args.output.extension()
        && !ext.eq_ignore_ascii_case("png")
    {
        bail!(
            "invalid --output {}: fmv writes PNG images, not .{}; name the file with .png",
            args.output.display(),
            ext.to_string_lossy()
        );
    }
    if let Some(parent) = args.output.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let preprocess = match mode {
        // The original feeds sigmoid(param) to the network as is.
        Mode::Compat => Preprocess::original(),
        Mode::Robust => args.preprocess.build(&args.model)?,
    };
    let cfg = PatternConfig::new(args.layer.layer.clone(), args.filter.clone(), algorithm)
        .with_seed(args.seed);
    let model = args.model.load()?;
    let viz = args.preprocess.visualizer(model, preprocess);
    let patterns = viz.maximize(&cfg, &mut Session::new("images"))?;
    let interrupted = patterns.iter().any(|p| p.interrupted) || patterns.len() < args.filter.len();
    // An interrupted run writes its patterns at once, without the reference.
    let reference = match &args.reference_images {
        Some(dir) if !interrupted => {
            let (files, skipped) = expand_inputs(std::slice::from_ref(dir))?;
            for s in &skipped {
                eprintln!("warning: skipping {}: {}", s.path.display(), s.reason);
            }
            let cfg = MaxActivationsConfig::new(args.layer.layer.clone(), args.filter.clone())
                .with_objective(objective(&args));
            Some(
                viz.max_activations(&files, &cfg, &mut Session::new("images"))?
                    .maxima,
            )
        }
        _ => None,
    };
    let several = patterns.len() > 1;
    let mut docs = Vec::new();
    for (k, p) in patterns.iter().enumerate() {
        let out = output_for(&args.output, p.filter, several);
        write_png(&out, p)?;
        docs.push(PatternDocument::new(
            p,
            &out,
            reference.as_ref().map(|r| r[k]),
        ));
    }
    for d in docs.iter().filter(|d| d.never_fired()) {
        eprintln!(
            "warning: filter {} of {} never fired: its map stayed at 0 from every start tried, so \
             no gradient reached the image and {} is the starting noise; try another --seed{}",
            d.filter,
            d.layer,
            d.output,
            if d.mode == "compat" {
                " or --init-image"
            } else {
                ""
            }
        );
    }
    if args.json {
        match docs.as_slice() {
            [one] if !several => print_json(one)?,
            all => print_json(&all)?,
        }
    } else {
        for d in &docs {
            println!(
                "{} filter {} ({}): activation {:.4}{} -> {}",
                d.layer,
                d.filter,
                d.mode,
                d.final_activation,
                d.ratio_to_reference
                    .flatten()
                    .map_or(String::new(), |r| format!(
                        ", {r:.2}x the best reference image"
                    )),
                d.output
            );
        }
    }
    Ok(if interrupted {
        Outcome::Interrupted
    } else {
        Outcome::Done
    })
}

fn write_png(path: &Path, p: &Pattern) -> Result<()> {
    let rgb = p.to_rgb8();
    let img = image::RgbImage::from_raw(rgb.width as u32, rgb.height as u32, rgb.pixels)
        .context("image buffer has the wrong size")?;
    write_atomic(path, &encode_png(&img)?)
}
