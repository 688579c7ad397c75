//! `fmv rank`: per class, the feature maps unique to it (the original's `find_unique_filters`),
//! with sharding, merging and resuming.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use fmv::core::RankCounts;
use fmv::{ImageFolder, LayerRef, RankConfig, Ranking, Shard};
use serde_json::{Map, Value, json};

use crate::args::{ModelArgs, PreprocessArgs, print_json, visualizer};
use crate::output::{partial_path, report_skipped, write_json};
use crate::progress::Progress;

/// Options of `fmv rank`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    preprocess: PreprocessArgs,
    /// Layer: a name (`layer4.1`, `features.28`) or the original's integer (`-2`, `12`).
    #[arg(long, allow_hyphen_values = true)]
    layer: Option<String>,
    /// Training ImageFolder: one sub-folder per class.
    #[arg(long, value_name = "DIR")]
    train_dir: Option<PathBuf>,
    /// Only these classes, in this order (comma-separated). Default: every sub-folder.
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    classes: Option<Vec<String>>,
    /// A map counts for an image when it is among the image's this many most active maps (fewer
    /// than the layer's channels).
    #[arg(long, default_value_t = 25)]
    n_each_img: usize,
    /// Each class keeps its this many most frequent maps before shared ones are removed.
    #[arg(long, default_value_t = 25)]
    n_each_class: usize,
    /// Process only every N-th image of each class, starting at I (`I/N`); needs `-o`, which
    /// then receives the partial counts (resumed if the file exists).
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
    /// Combine partial results of `--shard` runs into the result of one run (no network needed).
    #[arg(long, num_args = 1.., value_name = "PART", conflicts_with_all = ["shard", "train_dir"])]
    merge: Vec<PathBuf>,
    /// Write the result (or, with `--shard`, the partial counts) to this file, atomically. An
    /// unfinished run keeps its state in `FILE.partial.json` and resumes from it.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Fail on the first file that cannot be used instead of skipping it.
    #[arg(long)]
    strict: bool,
    /// Print one JSON document on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    if !args.merge.is_empty() {
        return merge(&args);
    }
    let model_args = &args.model;
    let layer: LayerRef = args
        .layer
        .as_deref()
        .context("--layer is required")?
        .parse()?;
    let train_dir = args.train_dir.as_ref().context("--train-dir is required")?;
    let shard: Option<Shard> = args.shard.as_deref().map(str::parse).transpose()?;
    if shard.is_some() && args.output.is_none() {
        bail!("--shard needs -o FILE for its partial counts (e.g. -o part-0.json)");
    }
    let preprocess = args.preprocess.build()?;
    let folder = ImageFolder::open(train_dir, args.classes.as_deref())?;
    let weights = model_args.fingerprint()?.1;
    let model = model_args.load()?;
    let viz = visualizer(model, preprocess, &args.preprocess);
    let cfg = RankConfig::new(layer)
        .with_n_each_img(args.n_each_img)
        .with_n_each_class(args.n_each_class)
        .with_shard(shard)
        .with_strict(args.strict);
    viz.resolve(cfg.layer())?;
    // Where the counting state lives while the run is unfinished.
    let state_file = match (&shard, &args.output) {
        (Some(_), Some(o)) => Some(o.clone()),
        (None, Some(o)) => Some(partial_path(o)),
        _ => None,
    };
    let resume = match &state_file {
        Some(f) if f.exists() => {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read {}", f.display()))?;
            let prev: RankCounts = serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} is not a partial ranking; delete it or change -o",
                    f.display()
                )
            })?;
            eprintln!("resuming from {}", f.display());
            Some(prev)
        }
        _ => None,
    };
    let progress = Progress::new("images");
    let counts = viz.rank_counts(
        &folder,
        &cfg,
        &weights,
        resume,
        &mut |e| progress.on_event(e),
        &mut |state| {
            if let Some(f) = &state_file {
                write_json(f, state).map_err(|e| fmv::core::Error::Io {
                    path: f.clone(),
                    source: std::io::Error::other(format!("{e:#}")),
                })?;
            }
            Ok(())
        },
    )?;
    drop(progress);
    if shard.is_some() {
        let out = args.output.as_ref().expect("checked above");
        write_json(out, &counts)?;
        report_skipped(&counts.skipped);
        if args.json {
            print_json(&counts)?;
        } else {
            let n: usize = counts.classes.iter().map(|c| c.n_images).sum();
            println!(
                "shard {}: {n} images counted, partial result in {}",
                counts.shards[0],
                out.display()
            );
        }
        return Ok(());
    }
    let ranking = counts.select()?;
    finish(&args, &ranking)?;
    if let Some(f) = &state_file {
        std::fs::remove_file(f).ok();
    }
    Ok(())
}

fn merge(args: &Args) -> Result<()> {
    let parts = args
        .merge
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            serde_json::from_str::<RankCounts>(&text).with_context(|| {
                format!(
                    "{} is not a partial result of `fmv rank --shard`",
                    p.display()
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let merged = RankCounts::merge(&parts)?;
    if !merged.is_complete() {
        let missing: Vec<String> = (0..merged.shard_count)
            .filter(|s| !merged.shards.contains(s))
            .map(|s| format!("{s}/{}", merged.shard_count))
            .collect();
        eprintln!(
            "warning: shards {} are missing; the result covers only the shards given",
            missing.join(", ")
        );
    }
    finish(args, &merged.select()?)
}

/// The JSON of a ranking (the contract of `fmv rank --json`).
pub fn ranking_json(r: &Ranking, skipped: Value) -> Value {
    let per_class = |f: &dyn Fn(&fmv::ClassRanking) -> Value| {
        Value::Object(
            r.classes
                .iter()
                .map(|c| (c.name.clone(), f(c)))
                .collect::<Map<_, _>>(),
        )
    };
    json!({
        "layer": r.layer,
        "preprocess": r.preprocess,
        "classes": per_class(&|c| json!(c.unique)),
        "counts": per_class(&|c| json!(c.counts)),
        "images": per_class(&|c| json!(c.n_images)),
        "skipped": skipped,
        "n_each_img": r.n_each_img,
        "n_each_class": r.n_each_class,
        "top_before_filter": per_class(&|c| json!(c.top)),
        "mean_activation": per_class(&|c| json!(c.mean_activation)),
    })
}

fn finish(args: &Args, ranking: &Ranking) -> Result<()> {
    let skipped = report_skipped(&ranking.skipped);
    let value = ranking_json(ranking, serde_json::to_value(skipped)?);
    if let Some(out) = &args.output {
        write_json(out, &value)?;
    }
    if args.json {
        return print_json(&value);
    }
    println!(
        "layer {} (preprocess {}, top {} per image, {} per class)",
        ranking.layer, ranking.preprocess, ranking.n_each_img, ranking.n_each_class
    );
    for c in &ranking.classes {
        let shown: Vec<String> = c
            .unique
            .iter()
            .map(|&m| format!("{m} ({}/{})", c.counts[m], c.n_images))
            .collect();
        println!(
            "{}: {}",
            c.name,
            if shown.is_empty() {
                "no unique maps".into()
            } else {
                shown.join(", ")
            }
        );
    }
    Ok(())
}
