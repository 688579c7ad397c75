//! `fmv activations`: per-image channel means and top channels at one layer.

use std::path::PathBuf;

use anyhow::Result;
use fmv::core::expand_inputs;
use fmv::{ActivationsConfig, LayerRef};
use serde::Serialize;

use crate::args::{LayerArg, ModelArgs, PreprocessArgs, print_json, visualizer};
use crate::progress::Progress;

/// Options of `fmv activations`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    preprocess: PreprocessArgs,
    #[command(flatten)]
    layer: LayerArg,
    /// How many most active channels to list per image.
    #[arg(long, default_value_t = 25)]
    top: usize,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    json: bool,
    /// Images, or folders whose image files are taken in name order.
    #[arg(required = true, value_name = "IMAGE_OR_DIR")]
    inputs: Vec<PathBuf>,
}

#[derive(Serialize)]
struct Image {
    path: String,
    mean: Vec<f32>,
    top: Vec<usize>,
}

#[derive(Serialize)]
struct Skipped {
    path: String,
    reason: String,
}

#[derive(Serialize)]
struct Output {
    layer: String,
    preprocess: String,
    images: Vec<Image>,
    skipped: Vec<Skipped>,
}

pub fn run(args: Args) -> Result<()> {
    let preprocess = args.preprocess.build()?;
    let model = args.model.load()?;
    let viz = visualizer(model, preprocess, &args.preprocess);
    let layer: LayerRef = args.layer.get();
    // Resolve before reading any image, so a wrong layer fails at once.
    viz.resolve(&layer)?;
    let (files, skipped) = expand_inputs(&args.inputs)?;
    for s in &skipped {
        eprintln!("warning: skipping {}: {}", s.path.display(), s.reason);
    }
    let cfg = ActivationsConfig::new(layer).with_top(args.top);
    let progress = Progress::new("images");
    let acts = viz.activations(&files, &cfg, &mut |e| progress.on_event(e))?;
    drop(progress);
    let out = Output {
        layer: acts.layer,
        preprocess: acts.preprocess,
        images: acts
            .images
            .into_iter()
            .map(|i| Image {
                path: i.path.display().to_string(),
                mean: i.mean,
                top: i.top,
            })
            .collect(),
        skipped: skipped
            .into_iter()
            .map(|s| Skipped {
                path: s.path.display().to_string(),
                reason: s.reason,
            })
            .collect(),
    };
    if args.json {
        return print_json(&out);
    }
    println!("layer {} (preprocess {})", out.layer, out.preprocess);
    for img in &out.images {
        let shown: Vec<String> = img
            .top
            .iter()
            .map(|&c| format!("{c}:{:.4}", img.mean[c]))
            .collect();
        println!("{}\n  top: {}", img.path, shown.join(" "));
    }
    Ok(())
}
