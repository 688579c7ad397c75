//! `fmv class-sums`: per test image, the summed activation of each class's top maps (viz 5).

use std::path::PathBuf;

use anyhow::Result;
use fmv::report::documents::ClassSumsDocument;
use fmv::{ClassSumsConfig, ImageFolder, RankConfig};

use crate::Outcome;
use crate::args::{LayerArg, ModelArgs, PreprocessArgs, print_json};
use crate::session::Session;
use crate::top_maps::{check_made_by, read_top_maps, warn_of_classes_without_images};

/// Options of `fmv class-sums`.
#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("maps").required(true).args(["top_maps", "train_dir"]))]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    preprocess: PreprocessArgs,
    #[command(flatten)]
    layer: LayerArg,
    /// Test ImageFolder: one sub-folder per true class.
    #[arg(long, value_name = "DIR")]
    test_dir: PathBuf,
    /// The maps of each class: the JSON of `fmv rank` or a plain `{"class": [indices]}`.
    #[arg(long, value_name = "FILE")]
    top_maps: Option<PathBuf>,
    /// Or rank the maps first on this training ImageFolder (with the rank defaults).
    #[arg(long, value_name = "DIR")]
    train_dir: Option<PathBuf>,
    /// With `--train-dir`: the per-image cut-off of the ranking.
    #[arg(long, default_value_t = 25)]
    n_each_img: usize,
    /// With `--train-dir`: the per-class cut-off of the ranking.
    #[arg(long, default_value_t = 25)]
    n_each_class: usize,
    /// Fail on the first file that cannot be used instead of skipping it.
    #[arg(long)]
    strict: bool,
    /// Print one JSON document on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<Outcome> {
    let preprocess = args.preprocess.build(&args.model)?;
    let test = ImageFolder::open(&args.test_dir, None)?;
    let file_maps = args.top_maps.as_deref().map(read_top_maps).transpose()?;
    let model = args.model.load()?;
    let viz = args.preprocess.visualizer(model, preprocess);
    let layer = args.layer.layer;
    viz.resolve(&layer)?;
    if let (Some(maps), Some(path)) = (&file_maps, &args.top_maps) {
        check_made_by(maps, path, &viz, &layer)?;
    }
    let file_maps = file_maps.map(|m| m.maps);
    let mut session = Session::new("images");
    let top_maps = match (file_maps, &args.train_dir) {
        (Some(m), _) => m,
        (None, Some(train)) => {
            let folder = ImageFolder::open(train, None)?;
            let cfg = RankConfig::new(layer.clone())
                .with_n_each_img(args.n_each_img)
                .with_n_each_class(args.n_each_class)
                .with_strict(args.strict);
            let ranking = viz.rank(&folder, &cfg, &mut session)?;
            ranking
                .classes
                .into_iter()
                .map(|c| (c.name, c.unique))
                .collect()
        }
        (None, None) => unreachable!("clap requires --top-maps or --train-dir"),
    };
    warn_of_classes_without_images(&top_maps, &test, "its ROC AUC is undefined");
    let cfg = ClassSumsConfig::new(layer, top_maps).with_strict(args.strict);
    let sums = viz.class_sums(&test, &cfg, &mut session)?;
    drop(session);
    if args.json {
        print_json(&ClassSumsDocument::from(&sums))?;
        return Ok(Outcome::Done);
    }
    println!("layer {} (preprocess {})", sums.layer, sums.preprocess);
    for ((k, maps), auc) in sums.top_maps.iter().zip(&sums.separability) {
        let auc = auc.map_or("n/a".to_string(), |a| format!("{a:.3}"));
        println!("maps of {k} {maps:?}: ROC AUC {auc} for `{k}` against the other classes");
        for c in &sums.classes {
            let idx = sums.top_maps.iter().position(|(n, _)| n == k).unwrap_or(0);
            let v: Vec<String> = c.sums[idx].iter().map(|s| format!("{s:.3}")).collect();
            println!("  {:>12}: {}", c.name, v.join(" "));
        }
    }
    Ok(Outcome::Done)
}
