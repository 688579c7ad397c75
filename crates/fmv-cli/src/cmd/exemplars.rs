//! `fmv exemplars`: for each map of a layer, the real images where it is most active, with
//! sharding, merging and resuming.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use fmv::core::{ExemplarStat, Exemplars, ExemplarsConfig, ImageList, Observer};
use fmv::report::documents::ExemplarsDocument;
use fmv::report::exemplar_pictures;
use fmv::{Event, LayerRef, Shard, Style, Visualizer};

use crate::Outcome;
use crate::args::{ModelArgs, PreprocessArgs, layer, parse_shard, print_json};
use crate::output::{encode_png, ensure_writable_dir, write_atomic, write_json};
use crate::resume::{Saving, ended, read_state, warn_of_merge};
use crate::session::Session;

/// Options of `fmv exemplars`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    preprocess: PreprocessArgs,
    /// Layer: a name (`layer4.1`, `features.28`) or the original's integer (`-2`, `12`).
    #[arg(long, allow_hyphen_values = true, value_parser = layer)]
    layer: Option<LayerRef>,
    /// The maps (comma-separated channels).
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "K,…",
        conflicts_with = "all"
    )]
    filters: Option<Vec<usize>>,
    /// Every map of the layer.
    #[arg(long)]
    all: bool,
    /// Images: files, plain folders, or ImageFolders (`root/<class>/<image>`); ties between
    /// equal scores go to the earlier image in this order.
    #[arg(long, num_args = 1.., value_name = "DIR")]
    images: Vec<PathBuf>,
    /// Images kept per map.
    #[arg(short = 'k', default_value_t = 9)]
    k: usize,
    /// Rank images by the map's spatial mean (the original's statistic) or its maximum.
    #[arg(long, value_enum, default_value_t = By::Mean)]
    by: By,
    /// Process only every N-th image, starting at I (`I/N`); needs `-o FILE`, which then
    /// receives the partial result (resumed if the file exists).
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    shard: Option<Shard>,
    /// Combine partial results of `--shard` runs into the result of one run (pictures need the
    /// network too).
    #[arg(long, num_args = 1.., value_name = "PART", conflicts_with_all = ["shard", "images"])]
    merge: Vec<PathBuf>,
    /// Output folder: `exemplars.json` and one PNG per map (created). With `--shard`, the file
    /// that receives the partial result. An unfinished run keeps its state in the folder's
    /// `exemplars.partial.json` and resumes from it.
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    output: Option<PathBuf>,
    /// With `-o`: also `filter-K-crops.png`, each image's most active place cut out at the
    /// resolution the network saw it.
    #[arg(long)]
    crops: bool,
    /// How the maps are drawn over the images.
    #[arg(long, value_enum, default_value_t = StyleArg::Heatmap)]
    style: StyleArg,
    /// Fail on the first file that cannot be used instead of skipping it.
    #[arg(long)]
    strict: bool,
    /// Print one JSON document on stdout.
    #[arg(long)]
    json: bool,
}

/// `--by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum By {
    Mean,
    Max,
}

/// `--style`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum StyleArg {
    /// A viridis heat map over the image, one scale for the grid.
    Heatmap,
    /// The original's overlay: the map multiplied onto the image.
    Original,
}

impl Args {
    fn stat(&self) -> ExemplarStat {
        match self.by {
            By::Mean => ExemplarStat::Mean,
            By::Max => ExemplarStat::Max,
        }
    }

    fn style(&self) -> Style {
        match self.style {
            StyleArg::Heatmap => Style::Heatmap,
            StyleArg::Original => Style::Original,
        }
    }
}

/// Saves the exemplars' checkpoints.
fn save_state(event: &Event<'_>, file: &Path) -> Option<Result<()>> {
    match event {
        Event::ExemplarsCheckpoint(state) => Some(write_json(file, state)),
        _ => None,
    }
}

/// Refuses outputs that would replace or join an input, and prepares the output.
fn check_outputs(args: &Args) -> Result<()> {
    let Some(out) = &args.output else {
        return Ok(());
    };
    let inputs = args
        .model
        .inputs()
        .add_all(&args.images, "--images")
        .add_all(&args.merge, "--merge");
    if args.shard.is_some() {
        inputs.refuse_file(out, "-o")?;
        if let Some(dir) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
            ensure_writable_dir(dir)?;
        }
        if out.is_dir() {
            bail!(
                "invalid -o {}: with --shard, -o names the part's file (e.g. -o part-0.json), and this is a folder",
                out.display()
            );
        }
    } else {
        inputs.refuse_folder(out, "-o")?;
        if out.exists() && !out.is_dir() {
            bail!(
                "invalid -o {}: it is a file; -o names the folder for exemplars.json and the pictures",
                out.display()
            );
        }
        ensure_writable_dir(out)?;
    }
    Ok(())
}

pub fn run(args: Args) -> Result<Outcome> {
    check_outputs(&args)?;
    if !args.merge.is_empty() {
        return merge(&args);
    }
    let layer = args.layer.clone().context("--layer is required")?;
    if args.images.is_empty() {
        bail!("--images is required: the images (or folders of images) to scan");
    }
    let filters = match (&args.filters, args.all) {
        (Some(f), false) => Some(f.clone()),
        (None, true) => None,
        _ => bail!("give the maps with --filters K,… or every map with --all"),
    };
    if args.shard.is_some() && args.output.is_none() {
        bail!("--shard needs -o FILE for its partial result (e.g. -o part-0.json)");
    }
    let preprocess = args.preprocess.build(&args.model)?;
    let images = ImageList::open(&args.images)?;
    let model = args.model.load()?;
    let viz = args.preprocess.visualizer(model, preprocess);
    viz.resolve(&layer)?;
    let state_file = match (&args.shard, &args.output) {
        (Some(_), Some(o)) => Some(o.clone()),
        (None, Some(o)) => Some(o.join("exemplars.partial.json")),
        _ => None,
    };
    let resume = match &state_file {
        Some(f) if f.exists() => {
            let prev: Exemplars =
                read_state(f, "a partial exemplars result; delete it or change -o")?;
            eprintln!("resuming from {}", f.display());
            Some(prev)
        }
        _ => None,
    };
    let cfg = ExemplarsConfig::new(layer)
        .with_filters(filters)
        .with_k(args.k)
        .with_by(args.stat())
        .with_shard(args.shard)
        .with_strict(args.strict)
        .with_resume(resume);
    let mut observer = Saving::new(Session::new("images"), state_file.as_deref(), save_state);
    let found = viz.exemplars(&images, &cfg, &mut observer);
    drop(observer.session);
    if let Some(e) = observer.failed {
        return Err(e);
    }
    let Some(found) = ended(
        found,
        state_file.as_deref(),
        ("the images scanned", "DIR", "parameters, images"),
    )?
    else {
        return Ok(Outcome::Interrupted);
    };
    if args.shard.is_some() {
        let out = args.output.as_ref().expect("checked above");
        write_json(out, &found)?;
        if args.json {
            print_json(&found)?;
        } else {
            println!(
                "shard {}: {} images scanned, partial result in {}",
                found.shards[0],
                found.images,
                out.display()
            );
        }
        return Ok(Outcome::Done);
    }
    let outcome = finish(&args, &found, Some(&viz))?;
    if let Some(f) = &state_file {
        std::fs::remove_file(f).ok();
    }
    Ok(outcome)
}

fn merge(args: &Args) -> Result<Outcome> {
    let parts = args
        .merge
        .iter()
        .map(|p| read_state(p, "a partial result of `fmv exemplars --shard`"))
        .collect::<Result<Vec<Exemplars>>>()?;
    let merged = Exemplars::merge(&parts)?;
    warn_of_merge(&merged.shards, merged.shard_count, &merged.skipped);
    // The pictures need the network that found the exemplars.
    let viz = if args.output.is_some() && args.model.given() {
        let preprocess = args.preprocess.build(&args.model)?;
        let viz = args.preprocess.visualizer(args.model.load()?, preprocess);
        check_made_by(&merged, &viz)?;
        Some(viz)
    } else {
        if args.output.is_some() {
            eprintln!(
                "note: no pictures drawn; give the network (--weights) to draw each map's \
                 exemplars"
            );
        }
        None
    };
    finish(args, &merged, viz.as_ref())
}

/// Refuses to draw exemplars with another network or preprocessing than found them.
fn check_made_by(found: &Exemplars, viz: &Visualizer) -> Result<()> {
    let weights = viz.backbone().provenance()?.id;
    if weights != found.weights {
        bail!(
            "the parts were made with other weights (sha256 {}) than these (sha256 {}); give \
             the weights that found them",
            found.weights.as_str(),
            weights.as_str()
        );
    }
    let preprocess = viz.preprocess().name();
    if preprocess != found.preprocess {
        bail!(
            "the parts were made with the preprocessing `{}`, and this run's is `{preprocess}`; \
             give the same --preprocess",
            found.preprocess
        );
    }
    Ok(())
}

/// Writes `exemplars.json` and the pictures (when a network is at hand), and prints.
fn finish(args: &Args, found: &Exemplars, viz: Option<&Visualizer>) -> Result<Outcome> {
    let doc = ExemplarsDocument::from(found);
    if let Some(dir) = &args.output {
        write_json(&dir.join("exemplars.json"), &doc)?;
        if let Some(viz) = viz {
            let mut session = Session::new("maps");
            for (i, map) in found.maps.iter().enumerate() {
                if session.should_stop() {
                    drop(session);
                    eprintln!(
                        "interrupted: exemplars.json and the pictures of {i} of {} maps are in {}",
                        found.maps.len(),
                        dir.display()
                    );
                    return Ok(Outcome::Interrupted);
                }
                let pictures =
                    exemplar_pictures(viz, found, map, (args.style(), None), args.crops, &mut ())?;
                let file = dir.join(format!("filter-{}.png", map.filter));
                write_atomic(&file, &encode_png(&pictures.grid)?)?;
                if let Some(crops) = &pictures.crops {
                    let file = dir.join(format!("filter-{}-crops.png", map.filter));
                    write_atomic(&file, &encode_png(crops)?)?;
                }
                session.on_event(&Event::Progress {
                    done: i + 1,
                    total: found.maps.len(),
                });
            }
        }
    }
    if args.json {
        print_json(&doc)?;
        return Ok(Outcome::Done);
    }
    println!(
        "layer {} (preprocess {}): the {} most active of {} images per map, by {}",
        found.layer,
        found.preprocess,
        found.k,
        found.images,
        found.by.as_str()
    );
    for m in &found.maps {
        let shown: Vec<String> = m
            .top
            .iter()
            .map(|e| {
                let name = e.path.file_name().unwrap_or_default().to_string_lossy();
                format!(
                    "{name} {:.3}",
                    match found.by {
                        ExemplarStat::Mean => e.mean,
                        ExemplarStat::Max => e.max,
                    }
                )
            })
            .collect();
        println!("filter {}: {}", m.filter, shown.join(", "));
    }
    if let Some(dir) = &args.output {
        println!("written to {}", dir.display());
    }
    Ok(Outcome::Done)
}
