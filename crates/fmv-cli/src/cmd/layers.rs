//! `fmv layers`: the taps of a network.

use anyhow::Result;
use fmv::Backbone;
use fmv::models::HeadState;
use serde::Serialize;

use crate::Outcome;
use crate::args::{ModelArgs, print_json};

/// Options of `fmv layers`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    json: bool,
}

/// One tap in `fmv layers --json`.
#[derive(Serialize)]
struct Layer {
    name: String,
    channels: usize,
    height: usize,
    width: usize,
}

/// `fmv layers --json`.
#[derive(Serialize)]
struct Output {
    arch: String,
    description: String,
    /// The classifier as fmv runs it (`fc.0 Linear(2048→256), ReLU, ...`), why it cannot, or
    /// null for a headless checkpoint.
    head: Option<String>,
    layers: Vec<Layer>,
}

pub fn run(args: Args) -> Result<Outcome> {
    let model = args.model.load()?;
    let sizes = model.spatial_sizes(224, 224);
    let layers: Vec<Layer> = model
        .layers()
        .iter()
        .zip(sizes)
        .map(|(l, hw)| {
            let (height, width) = hw.unwrap_or((0, 0));
            Layer {
                name: l.name.clone(),
                channels: l.channels,
                height,
                width,
            }
        })
        .collect();
    let head = match model.arch().head() {
        HeadState::Absent => None,
        HeadState::Ready(h) => Some(h.to_string()),
        HeadState::Unusable { prefix, reason } => Some(format!(
            "`{prefix}` not interpreted, so no logits: {reason}"
        )),
    };
    let out = Output {
        arch: model.arch_name(),
        description: model.arch().description(),
        head,
        layers,
    };
    if args.json {
        print_json(&out)?;
        return Ok(Outcome::Done);
    }
    println!("{}", out.description);
    if let Some(head) = &out.head {
        println!("head: {head}");
    }
    println!("{:<16} {:>8}  {:>9}", "layer", "channels", "at 224");
    for l in &out.layers {
        println!(
            "{:<16} {:>8}  {:>4}×{:<4}",
            l.name, l.channels, l.height, l.width
        );
    }
    Ok(Outcome::Done)
}
