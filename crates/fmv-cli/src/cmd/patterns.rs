//! `fmv patterns`: activation maximisation (viz 1).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use fmv::Preprocess;
use fmv::core::{Mode, Objective, Pattern, PatternConfig, expand_inputs, load_rgb8};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

use crate::args::{LayerArg, ModelArgs, PreprocessArgs, print_json, visualizer};
use crate::output::{report_skipped, show, write_atomic};

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
    #[arg(long, default_value = "robust", value_parser = ["robust", "compat"])]
    mode: String,
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
    /// Robust: optimisation steps [default: 256].
    #[arg(long)]
    steps: Option<usize>,
    /// Robust: maximise the map's mean (`channel`) or its centre unit (`neuron`) [default: channel].
    #[arg(long, value_parser = ["channel", "neuron"])]
    objective: Option<String>,
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

pub fn run(args: Args) -> Result<()> {
    let mode = if args.mode == "compat" {
        Mode::Compat
    } else {
        Mode::Robust
    };
    let compat_only = [
        ("--init-image", args.init_image.is_some()),
        ("--init-size", args.init_size.is_some()),
        ("--opt-steps", args.opt_steps.is_some()),
        ("--upscaling-steps", args.upscaling_steps.is_some()),
        ("--upscaling-factor", args.upscaling_factor.is_some()),
    ];
    let robust_only = [
        ("--steps", args.steps.is_some()),
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
        Mode::Robust => args.preprocess.build()?,
    };
    let init = args
        .init_image
        .as_ref()
        .map(|p| load_rgb8(p, fmv::core::Gray16::HighByte))
        .transpose()?;
    let mut cfg = PatternConfig::new(args.layer.get(), args.filter.clone())
        .with_mode(mode)
        .with_seed(args.seed)
        .with_init_image(init);
    if let Some(v) = args.init_size {
        cfg = cfg.with_init_size(v);
    }
    if let Some(v) = args.lr {
        cfg = cfg.with_lr(v);
    }
    if let Some(v) = args.opt_steps {
        cfg = cfg.with_opt_steps(v);
    }
    if let Some(v) = args.upscaling_steps {
        cfg = cfg.with_upscaling_steps(v);
    }
    if let Some(v) = args.upscaling_factor {
        cfg = cfg.with_upscaling_factor(v);
    }
    if let Some(v) = args.steps {
        cfg = cfg.with_steps(v);
    }
    let objective = match args.objective.as_deref() {
        Some("neuron") => Objective::Neuron,
        _ => Objective::Channel,
    };
    cfg = cfg.with_objective(objective);
    let model = args.model.load()?;
    let viz = visualizer(model, preprocess, &args.preprocess);

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        // A second Ctrl-C ends the process at once.
        let _ = ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!(
                "\ninterrupted: finishing with the best image so far (Ctrl-C again to abort)"
            );
        });
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} steps ({elapsed}, eta {eta}) {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let patterns = viz.maximize(
        &cfg,
        &mut |e| {
            if let fmv::Event::Step {
                done,
                total,
                activation,
            } = e
            {
                bar.set_length(*total as u64);
                bar.set_position(*done as u64);
                bar.set_message(format!("activation {activation:.4}"));
            }
        },
        &|| stop.load(Ordering::SeqCst),
    )?;
    bar.finish_and_clear();

    let reference = match &args.reference_images {
        None => None,
        Some(dir) => {
            let (files, mut skipped) = expand_inputs(std::slice::from_ref(dir))?;
            let (best, more) = viz.max_activations(
                &files,
                &args.layer.get(),
                &args.filter,
                objective,
                &mut |_| {},
            )?;
            skipped.extend(more);
            report_skipped(&skipped);
            Some(best)
        }
    };
    let several = patterns.len() > 1;
    let mut docs = Vec::new();
    for (k, p) in patterns.iter().enumerate() {
        let out = output_for(&args.output, p.filter, several);
        write_png(&out, p)?;
        docs.push(pattern_json(p, &out, reference.as_ref().map(|r| r[k])));
    }
    let interrupted = patterns.iter().any(|p| p.interrupted) || patterns.len() < args.filter.len();
    if args.json {
        print_json(&if several {
            Value::Array(docs)
        } else {
            docs.remove(0)
        })?;
    } else {
        for d in &docs {
            println!(
                "{} filter {} ({}): activation {:.4}{} -> {}",
                d["layer"].as_str().unwrap_or_default(),
                d["filter"],
                d["mode"].as_str().unwrap_or_default(),
                d["final_activation"].as_f64().unwrap_or_default(),
                d.get("ratio_to_reference")
                    .and_then(Value::as_f64)
                    .map_or(String::new(), |r| format!(
                        ", {r:.2}x the best reference image"
                    )),
                d["output"].as_str().unwrap_or_default()
            );
        }
    }
    if interrupted {
        std::process::exit(130);
    }
    Ok(())
}

fn write_png(path: &Path, p: &Pattern) -> Result<()> {
    let rgb = p.to_rgb8();
    let img = image::RgbImage::from_raw(rgb.width as u32, rgb.height as u32, rgb.pixels)
        .context("image buffer has the wrong size")?;
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .context("cannot encode PNG")?;
    write_atomic(path, &png)
}

fn pattern_json(p: &Pattern, out: &Path, reference: Option<f32>) -> Value {
    let mut v = json!({
        "layer": p.layer,
        "filter": p.filter,
        "mode": p.mode,
        "seed": p.seed,
        "activation_trace": p.activation_trace,
        "final_activation": p.final_activation,
        "width": p.width,
        "height": p.height,
        "output": show(out),
        "interrupted": p.interrupted,
    });
    if let Some(r) = reference {
        v["reference_max_activation"] = json!(r);
        v["ratio_to_reference"] = json!(if r > 0.0 {
            Some(p.final_activation / r as f64)
        } else {
            None
        });
    }
    v
}
