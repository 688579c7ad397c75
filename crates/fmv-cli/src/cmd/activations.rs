//! `fmv activations`: per-image channel means and top channels at one layer.

use std::path::PathBuf;

use anyhow::Result;
use fmv::ActivationsConfig;
use fmv::core::files::expand_inputs;
use fmv::report::documents::ActivationsDocument;

use crate::Outcome;
use crate::args::{LayerArg, ModelArgs, PreprocessArgs, print_json};
use crate::session::Session;

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

pub fn run(args: Args) -> Result<Outcome> {
    let preprocess = args.preprocess.build(&args.model)?;
    let model = args.model.load()?;
    let labels = args.model.labels(&model)?;
    let viz = args.preprocess.visualizer(model, preprocess);
    let layer = args.layer.layer;
    // Resolve before reading any image, so a wrong layer fails at once.
    let id = viz.resolve(&layer)?;
    let labels = labels.filter(|_| viz.backbone().layer(id).kind == fmv::models::LayerKind::Logits);
    let (files, skipped) = expand_inputs(&args.inputs)?;
    for s in &skipped {
        eprintln!("warning: skipping {}: {}", s.path.display(), s.reason);
    }
    let cfg = ActivationsConfig::new(layer).with_top(args.top);
    let acts = viz.activations(&files, &cfg, &mut Session::new("images"))?;
    let out = ActivationsDocument::new(&acts, labels, &skipped);
    if args.json {
        print_json(&out)?;
        return Ok(Outcome::Done);
    }
    println!("layer {} (preprocess {})", out.layer, out.preprocess);
    for img in &out.images {
        let shown: Vec<String> = img
            .top
            .iter()
            .map(|&c| match &out.labels {
                Some(names) => format!("{}:{:.4}", names[c], img.mean[c]),
                None => format!("{c}:{:.4}", img.mean[c]),
            })
            .collect();
        println!("{}\n  top: {}", img.path, shown.join(" "));
    }
    Ok(Outcome::Done)
}
