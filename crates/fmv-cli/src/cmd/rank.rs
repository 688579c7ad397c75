//! `fmv rank`: per class, the feature maps unique to it (the original's `find_unique_filters`),
//! with sharding, merging and resuming.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use fmv::report::documents::RankDocument;
use fmv::{Event, ImageFolder, LayerRef, RankConfig, RankCounts, Ranking, Shard};

use crate::Outcome;
use crate::args::{ModelArgs, PreprocessArgs, layer, parse_shard, print_json};
use crate::output::{partial_path, write_json};
use crate::resume::{Saving, ended, read_state, warn_of_merge};
use crate::session::Session;

/// Options of `fmv rank`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    preprocess: PreprocessArgs,
    /// Layer: a name (`layer4.1`, `features.28`) or the original's integer (`-2`, `12`).
    #[arg(long, allow_hyphen_values = true, value_parser = layer)]
    layer: Option<LayerRef>,
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
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    shard: Option<Shard>,
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

/// Saves a ranking's checkpoints.
fn save_counts(event: &Event<'_>, file: &Path) -> Option<Result<()>> {
    match event {
        Event::RankCheckpoint(state) => Some(write_json(file, state)),
        _ => None,
    }
}

/// Refuses outputs that would replace an input, and creates the output's folder.
fn check_outputs(args: &Args) -> Result<()> {
    let Some(out) = &args.output else {
        return Ok(());
    };
    let mut inputs = args.model.inputs().add_all(&args.merge, "--merge");
    if let Some(train) = &args.train_dir {
        inputs = inputs.add(train, "--train-dir");
    }
    inputs.refuse_file(out, "-o")?;
    if args.shard.is_none() {
        inputs.refuse_file(&partial_path(out), "-o's state file")?;
    }
    if let Some(dir) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        if dir.exists() && !dir.is_dir() {
            bail!(
                "invalid -o {}: {} is not a folder",
                out.display(),
                dir.display()
            );
        }
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    Ok(())
}

pub fn run(args: Args) -> Result<Outcome> {
    check_outputs(&args)?;
    if !args.merge.is_empty() {
        return merge(&args);
    }
    let layer = args.layer.clone().context("--layer is required")?;
    let train_dir = args.train_dir.as_ref().context("--train-dir is required")?;
    if args.shard.is_some() && args.output.is_none() {
        bail!("--shard needs -o FILE for its partial counts (e.g. -o part-0.json)");
    }
    let preprocess = args.preprocess.build(&args.model)?;
    let folder = ImageFolder::open(train_dir, args.classes.as_deref())?;
    let model = args.model.load()?;
    let viz = args.preprocess.visualizer(model, preprocess);
    viz.resolve(&layer)?;
    // Where the counting state lives while the run is unfinished.
    let state_file = match (&args.shard, &args.output) {
        (Some(_), Some(o)) => Some(o.clone()),
        (None, Some(o)) => Some(partial_path(o)),
        _ => None,
    };
    let resume = match &state_file {
        Some(f) if f.exists() => {
            let prev: RankCounts = read_state(f, "a partial ranking; delete it or change -o")?;
            eprintln!("resuming from {}", f.display());
            Some(prev)
        }
        _ => None,
    };
    let cfg = RankConfig::new(layer)
        .with_n_each_img(args.n_each_img)
        .with_n_each_class(args.n_each_class)
        .with_shard(args.shard)
        .with_strict(args.strict)
        .with_resume(resume);
    let mut observer = Saving::new(Session::new("images"), state_file.as_deref(), save_counts);
    let counted = viz.rank_counts(&folder, &cfg, &mut observer);
    drop(observer.session);
    if let Some(e) = observer.failed {
        return Err(e);
    }
    let Some(counts) = ended(
        counted,
        state_file.as_deref(),
        ("the counts", "FILE", "parameters, classes"),
    )?
    else {
        return Ok(Outcome::Interrupted);
    };
    if args.shard.is_some() {
        let out = args.output.as_ref().expect("checked above");
        write_json(out, &counts)?;
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
        return Ok(Outcome::Done);
    }
    let ranking = counts.select()?;
    finish(&args, &ranking)?;
    if let Some(f) = &state_file {
        std::fs::remove_file(f).ok();
    }
    Ok(Outcome::Done)
}

fn merge(args: &Args) -> Result<Outcome> {
    let parts = args
        .merge
        .iter()
        .map(|p| read_state(p, "a partial result of `fmv rank --shard`"))
        .collect::<Result<Vec<RankCounts>>>()?;
    let merged = RankCounts::merge(&parts)?;
    warn_of_merge(&merged.shards, merged.shard_count, &merged.skipped);
    finish(args, &merged.select()?)?;
    Ok(Outcome::Done)
}

fn finish(args: &Args, ranking: &Ranking) -> Result<()> {
    let doc = RankDocument::from(ranking);
    if let Some(out) = &args.output {
        write_json(out, &doc)?;
    }
    if args.json {
        return print_json(&doc);
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
