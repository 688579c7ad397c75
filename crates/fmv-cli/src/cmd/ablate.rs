//! `fmv ablate`: zero each class's maps at a layer and watch its logit and the accuracy, against
//! random sets of as many maps.

use std::path::PathBuf;

use anyhow::{Result, bail};
use fmv::core::AblationConfig;
use fmv::report::documents::AblationDocument;
use fmv::{ImageFolder, LayerRef};

use crate::Outcome;
use crate::args::{ModelArgs, PreprocessArgs, layer, print_json};
use crate::session::Session;
use crate::top_maps::{check_made_by, read_top_maps, warn_of_classes_without_images};

/// Options of `fmv ablate`.
#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("maps").required(true).args(["top_maps", "filters"]))]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    preprocess: PreprocessArgs,
    /// Layer: a name (`layer4.1`, `features.28`) or the original's integer (`-2`, `12`).
    #[arg(long, allow_hyphen_values = true, value_parser = layer, required = true)]
    layer: Option<LayerRef>,
    /// Test ImageFolder: one sub-folder per true class; sorted folder names are outputs 0, 1, …
    /// (torchvision's ImageFolder) unless `--labels` (or a timm config's label names, when
    /// they name every class) names the outputs.
    #[arg(long, value_name = "DIR", required = true)]
    test_dir: Option<PathBuf>,
    /// Each class's maps: the JSON of `fmv rank` (its unique maps) or a plain
    /// `{"class": [indices]}`.
    #[arg(long, value_name = "FILE")]
    top_maps: Option<PathBuf>,
    /// Or the same maps (comma-separated) for every class.
    #[arg(long, value_delimiter = ',', value_name = "K,…")]
    filters: Option<Vec<usize>>,
    /// Also zero every map of a class alone.
    #[arg(long)]
    each: bool,
    /// Random sets of as many maps (drawn from the others) each class's drop is compared with.
    #[arg(long, default_value_t = 20, value_name = "N")]
    random_sets: usize,
    /// Seed of the random sets.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Fail on the first file that cannot be used instead of skipping it.
    #[arg(long)]
    strict: bool,
    /// Print one JSON document on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<Outcome> {
    let (Some(layer), Some(test_dir)) = (args.layer.clone(), args.test_dir.as_ref()) else {
        bail!("--layer and --test-dir are required");
    };
    let preprocess = args.preprocess.build(&args.model)?;
    let test = ImageFolder::open(test_dir, None)?;
    let file_maps = args.top_maps.as_deref().map(read_top_maps).transpose()?;
    let model = args.model.load()?;
    // Explicit `--labels` name the outputs; a config's `label_names` only when they name every
    // test class (else its folders follow torchvision's sorted order).
    let labels = args.model.labels(&model)?.filter(|names| {
        args.model.labels.is_some() || test.class_names().iter().all(|c| names.contains(c))
    });
    let viz = args.preprocess.visualizer(model, preprocess);
    viz.resolve(&layer)?;
    let cfg = match (file_maps, &args.filters) {
        (Some(maps), _) => {
            let path = args.top_maps.as_ref().expect("read from it");
            check_made_by(&maps, path, &viz, &layer)?;
            warn_of_classes_without_images(&maps.maps, &test, "it is not ablated");
            for class in test.class_names() {
                if !maps.maps.iter().any(|(c, _)| *c == class) {
                    eprintln!(
                        "warning: class `{class}` of {} has no maps in {}; it is not ablated",
                        test.root.display(),
                        path.display()
                    );
                }
            }
            AblationConfig::new(layer, maps.maps)
        }
        (None, Some(filters)) => AblationConfig::same_maps(layer, filters.clone()),
        (None, None) => unreachable!("clap requires --top-maps or --filters"),
    };
    let cfg = cfg
        .with_each(args.each)
        .with_random_sets(args.random_sets)
        .with_seed(args.seed)
        .with_labels(labels)
        .with_strict(args.strict);
    let mut session = Session::new("images");
    let ablation = viz.ablate(&test, &cfg, &mut session)?;
    drop(session);
    let doc = AblationDocument::new(&ablation, args.each);
    if args.json {
        print_json(&doc)?;
        return Ok(Outcome::Done);
    }
    println!(
        "layer {} (preprocess {}): accuracy {:.1} % over {} test images",
        ablation.layer,
        ablation.preprocess,
        100.0 * ablation.accuracy,
        ablation.images
    );
    for c in &ablation.classes {
        let random = match (&c.random, c.z) {
            (Some(r), Some(z)) => format!(
                "; {} random sets drop {:.3} ± {:.3}, z {z:.2}",
                r.sets.len(),
                r.mean_drop,
                r.sd_drop
            ),
            (Some(r), None) => format!(
                "; {} random sets drop {:.3} (no spread)",
                r.sets.len(),
                r.mean_drop
            ),
            (None, _) => String::new(),
        };
        println!(
            "{} (output {}, maps {:?}): mean logit {:.3} → {:.3}, drop {:.3}{random}; accuracy \
             {:.1} %",
            c.name,
            c.output,
            c.maps,
            c.logit_before,
            c.logit_after,
            c.drop,
            100.0 * c.accuracy_after
        );
        if !c.each.is_empty() {
            let each: Vec<String> = c.each.iter().map(|(m, d)| format!("{m} {d:.3}")).collect();
            println!("  each map alone: {}", each.join(", "));
        }
    }
    Ok(Outcome::Done)
}
