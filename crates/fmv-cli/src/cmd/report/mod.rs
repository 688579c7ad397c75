//! `fmv report`: the whole pipeline in one command, written as a static HTML page with its
//! images, every number in `results.json`, and a run manifest.
//!
//! rank per class → patterns of each class's top maps → top-N maps of sample test images →
//! each class's top map over its own test images and the others' → each class's maps summed
//! → class sums. Without weights and folders it runs the embedded demo.

mod figures;
mod html;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use fmv::core::demo::{DEMO_SIZE, write_image_folder};
use fmv::models::demo::DemoNet;
use fmv::{
    ActivationsConfig, ImageFolder, LayerRef, Mode, Model, PatternConfig, Preprocess, RankConfig,
    Visualizer,
};
use serde_json::{Value, json};

use crate::args::{ModelArgs, PreprocessArgs, WeightsSource, visualizer};
use crate::cmd::class_sums::class_sums_json;
use crate::cmd::rank::ranking_json;
use crate::output::{ensure_writable_dir, report_skipped, show, write_json};
use crate::progress::Progress;

use self::figures::Style;
use self::html::Page;

/// Seed of the demo's training images; test images start at [`DEMO_TEST_SEED`].
const DEMO_TRAIN_SEED: u64 = 1 << 32;
/// Seed of the demo's test images (disjoint from the training run's and the trainer's).
const DEMO_TEST_SEED: u64 = 1 << 33;

/// Arguments of `fmv report`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Training ImageFolder (one folder per class) to rank the maps on.
    #[arg(long, value_name = "DIR")]
    train_dir: Option<PathBuf>,
    /// Test ImageFolder with the same classes, for the pictures and the class sums.
    #[arg(long, value_name = "DIR")]
    test_dir: Option<PathBuf>,
    /// Output folder: index.html, results.json, manifest.json and the images.
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    output: PathBuf,
    /// Layer (see `fmv layers`). Default: `-2` (the original's default); the demo's own layer
    /// for the demo.
    #[arg(long, allow_hyphen_values = true, value_name = "LAYER")]
    layer: Option<String>,
    #[command(flatten)]
    preprocess: PreprocessArgs,
    /// Only these classes, in this order (comma-separated), in both folders. Default: every
    /// sub-folder. With many classes (ImageNet has 1000) pick the ones to look at: each class
    /// costs patterns and pictures.
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    classes: Option<Vec<String>>,
    /// Which embedded demo network runs when no weights are given: resnet or vgg.
    #[arg(long, default_value = "resnet", value_name = "NET")]
    demo: String,
    /// Rank: the top maps counted per image. Default: 25 (8 for the demo).
    #[arg(long, value_name = "N")]
    n_each_img: Option<usize>,
    /// Rank: the most frequent maps kept per class before shared ones are removed. Default:
    /// 25 (8 for the demo).
    #[arg(long, value_name = "N")]
    n_each_class: Option<usize>,
    /// Maps per class shown as patterns and overlays (its most frequent unique maps).
    #[arg(long, default_value_t = 2, value_name = "N")]
    maps_per_class: usize,
    /// Test images per class in the top-maps section.
    #[arg(long, default_value_t = 1, value_name = "N")]
    samples_per_class: usize,
    /// Maps per sample image in the top-maps section.
    #[arg(long, default_value_t = 6, value_name = "N")]
    top: usize,
    /// Images per class in the one-map and summed-maps grids.
    #[arg(long, default_value_t = 3, value_name = "N")]
    images_per_class: usize,
    /// Pattern algorithm: robust (the default) or compat (the original's).
    #[arg(long, default_value = "robust", value_name = "MODE")]
    mode: String,
    /// Optimisation steps of each pattern (robust mode). Default: 256 (128 for the demo).
    #[arg(long, value_name = "N")]
    pattern_steps: Option<usize>,
    /// Seed of the patterns.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Overlay style: heatmap (viridis with a colour bar) or original (the grey mask).
    #[arg(long, default_value = "heatmap", value_name = "STYLE")]
    style: String,
    /// Also write the plots as SVG next to the PNGs (linked from the page).
    #[arg(long)]
    svg: bool,
}

/// Everything the pipeline runs on, whether from the user or the demo.
struct Setup {
    viz: Visualizer,
    weights: Value,
    train: PathBuf,
    test: PathBuf,
    layer: LayerRef,
    n_each_img: usize,
    n_each_class: usize,
    pattern_steps: usize,
    demo: bool,
}

fn setup(args: &Args) -> Result<Setup> {
    let given = [
        args.model.given(),
        args.train_dir.is_some(),
        args.test_dir.is_some(),
    ];
    if given == [false; 3] {
        return demo_setup(args);
    }
    let (true, Some(train), Some(test)) = (args.model.given(), &args.train_dir, &args.test_dir)
    else {
        bail!(
            "give --weights (or --model), --train-dir and --test-dir together (or none of them, for the embedded demo)"
        );
    };
    let preprocess = args.preprocess.build()?;
    let model = args.model.load()?;
    let arch = model.arch().to_string();
    let (file, sha256) = args.model.fingerprint()?;
    Ok(Setup {
        viz: visualizer(model, preprocess, &args.preprocess),
        weights: json!({ "file": file, "sha256": sha256, "arch": arch }),
        train: train.clone(),
        test: test.clone(),
        layer: args.layer.as_deref().unwrap_or("-2").parse()?,
        n_each_img: args.n_each_img.unwrap_or(25),
        n_each_class: args.n_each_class.unwrap_or(25),
        pattern_steps: args.pattern_steps.unwrap_or(256),
        demo: false,
    })
}

fn demo_setup(args: &Args) -> Result<Setup> {
    let net = DemoNet::from_name(&args.demo)
        .with_context(|| format!("unknown --demo `{}`: use resnet or vgg", args.demo))?;
    let device = fmv::models::parse_device(args.model.device.as_deref().unwrap_or("cpu"))?;
    let model: Model = net.load(&crate::args::load_options()?.with_device(device))?;
    let arch = model.arch().to_string();
    let data = args.output.join("data");
    let (train, test) = (data.join("train"), data.join("test"));
    eprintln!("demo: writing generated images to {}", show(&data));
    write_image_folder(&train, 24, DEMO_TRAIN_SEED)?;
    write_image_folder(&test, 6, DEMO_TEST_SEED)?;
    let preprocess = Preprocess::original().with_size(DEMO_SIZE, DEMO_SIZE);
    let (file, sha256) = WeightsSource::Demo(net).fingerprint()?;
    Ok(Setup {
        viz: visualizer(model, preprocess, &args.preprocess),
        weights: json!({ "file": file, "sha256": sha256, "arch": arch }),
        train,
        test,
        layer: match &args.layer {
            Some(l) => l.parse()?,
            None => net.layer(),
        },
        n_each_img: args.n_each_img.unwrap_or(8),
        n_each_class: args.n_each_class.unwrap_or(8),
        pattern_steps: args.pattern_steps.unwrap_or(128),
        demo: true,
    })
}

/// Wall-clock seconds of each stage, for the manifest.
struct Timings(Vec<(&'static str, f64)>);

impl Timings {
    fn time<T>(&mut self, stage: &'static str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        eprintln!("[{}/6] {stage}", self.0.len() + 1);
        let start = Instant::now();
        let out = f()?;
        self.0.push((stage, start.elapsed().as_secs_f64()));
        Ok(out)
    }
}

/// Runs `fmv report`.
pub fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    let style = Style::parse(&args.style, args.svg)?;
    let mode = match args.mode.as_str() {
        "robust" => Mode::Robust,
        "compat" => Mode::Compat,
        other => bail!("unknown --mode `{other}`: use robust or compat"),
    };
    for (name, v) in [
        ("--maps-per-class", args.maps_per_class),
        ("--samples-per-class", args.samples_per_class),
        ("--top", args.top),
        ("--images-per-class", args.images_per_class),
    ] {
        if v == 0 {
            bail!("invalid {name}: must be at least 1");
        }
    }
    let out = args.output.clone();
    ensure_writable_dir(&out)?;
    let s = setup(&args)?;
    let viz = &s.viz;
    let layer_id = viz.resolve(&s.layer)?;
    let layer_name = viz.backbone().layer(layer_id).name.clone();
    let family = viz.backbone().family();
    let train = ImageFolder::open(&s.train, args.classes.as_deref())?;
    let test = ImageFolder::open(&s.test, args.classes.as_deref())?;
    let (train_classes, test_classes) = (train.class_names(), test.class_names());
    if train_classes != test_classes {
        bail!(
            "the test folder {} has the classes {}, the training folder {} has {}: the report \
             needs the same classes in both (pick shared ones with --classes)",
            s.test.display(),
            test_classes.join(", "),
            s.train.display(),
            train_classes.join(", ")
        );
    }
    let ctx = figures::Ctx {
        out: &out,
        layer: s.layer.clone(),
        layer_name: layer_name.clone(),
        family,
        style,
    };
    let mut page = Page::new(&layer_name, s.demo);
    let mut results = serde_json::Map::new();
    let mut t = Timings(Vec::new());

    // 1. Rank.
    let ranking = t.time("rank: the maps unique to each class", || {
        let progress = Progress::new("training images");
        let cfg = RankConfig::new(s.layer.clone())
            .with_n_each_img(s.n_each_img)
            .with_n_each_class(s.n_each_class);
        Ok(viz.rank(&train, &cfg, &mut |e| progress.on_event(e))?)
    })?;
    let skipped = serde_json::to_value(report_skipped(&ranking.skipped))?;
    results.insert("rank".into(), ranking_json(&ranking, skipped));
    let chosen: Vec<(String, Vec<usize>)> = ranking
        .classes
        .iter()
        .map(|c| {
            let maps = c.unique.iter().take(args.maps_per_class).copied().collect();
            (c.name.clone(), maps)
        })
        .collect();
    page.rank(&figures::rank(&ctx, &ranking)?, &ranking);

    // 2. Patterns.
    let patterns = t.time("patterns: what each class's top maps respond to", || {
        let mut shown = Vec::new();
        for (k, (class, maps)) in chosen.iter().enumerate() {
            if maps.is_empty() {
                continue;
            }
            eprintln!(
                "  class {}/{} ({class}): maps {maps:?}, {} steps",
                k + 1,
                chosen.len(),
                s.pattern_steps
            );
            let cfg = PatternConfig::new(s.layer.clone(), maps.clone())
                .with_mode(mode)
                .with_seed(args.seed)
                .with_steps(s.pattern_steps);
            for p in viz.maximize(&cfg, &mut |_| {}, &|| false)? {
                shown.push(figures::pattern(&ctx, class, &p)?);
            }
        }
        Ok(shown)
    })?;
    results.insert(
        "patterns".into(),
        json!({
            "mode": mode.as_str(),
            "seed": args.seed,
            "steps": s.pattern_steps,
            "maps": patterns.iter().map(|p| p.json()).collect::<Vec<_>>(),
        }),
    );
    page.patterns(&patterns);

    // 3. Top-N maps of sample test images.
    let samples: Vec<(String, PathBuf)> = test
        .classes
        .iter()
        .flat_map(|c| {
            c.files
                .iter()
                .take(args.samples_per_class)
                .map(|f| (c.name.clone(), f.clone()))
        })
        .collect();
    let top_maps = t.time("top maps of sample test images", || {
        let files: Vec<PathBuf> = samples.iter().map(|(_, f)| f.clone()).collect();
        let cfg = ActivationsConfig::new(s.layer.clone())
            .with_top(args.top)
            .with_maps(true);
        let acts = viz.activations(&files, &cfg, &mut |_| {})?;
        acts.images
            .iter()
            .zip(&samples)
            .map(|(img, (class, _))| figures::top_maps(&ctx, class, img))
            .collect::<Result<Vec<_>>>()
    })?;
    results.insert(
        "top_maps".into(),
        json!(top_maps.iter().map(|m| m.json()).collect::<Vec<_>>()),
    );
    page.top_maps(&top_maps);

    // 4. One map over the class's own test images and the others'; 5. the maps summed.
    let picks = figures::pick_images(&test, args.images_per_class);
    let one_map = t.time("each class's top map over test images", || {
        let mut rows = Vec::new();
        for (class, maps) in &chosen {
            if let Some(&m) = maps.first() {
                rows.push(figures::maps_row(
                    viz,
                    &ctx,
                    "one-map",
                    class,
                    &[m],
                    &picks,
                )?);
            }
        }
        Ok(rows)
    })?;
    results.insert(
        "one_map".into(),
        json!(one_map.iter().map(|r| r.json()).collect::<Vec<_>>()),
    );
    page.one_map(&one_map);
    let summed = t.time("each class's unique maps summed", || {
        let mut rows = Vec::new();
        for c in &ranking.classes {
            if !c.unique.is_empty() {
                rows.push(figures::maps_row(
                    viz,
                    &ctx,
                    "summed-maps",
                    &c.name,
                    &c.unique,
                    &picks,
                )?);
            }
        }
        Ok(rows)
    })?;
    results.insert(
        "summed_maps".into(),
        json!(summed.iter().map(|r| r.json()).collect::<Vec<_>>()),
    );
    page.summed_maps(&summed);

    // 6. Class sums.
    let sums = t.time("class sums over the test images", || {
        let top: Vec<(String, Vec<usize>)> = ranking
            .classes
            .iter()
            .map(|c| (c.name.clone(), c.unique.clone()))
            .collect();
        Ok(viz.class_sums(&test, &s.layer, &top, false, &mut |_| {})?)
    })?;
    results.insert("class_sums".into(), class_sums_json(&sums));
    page.class_sums(&figures::class_sums(&ctx, &sums)?, &sums);

    // The page, the numbers, the manifest.
    let manifest = json!({
        "fmv_version": env!("CARGO_PKG_VERSION"),
        "weights": s.weights,
        "layer": layer_name,
        "preprocess": viz.preprocess().name(),
        "input_size": viz.preprocess().size(),
        "device": format!("{:?}", viz.backbone().device()),
        "train_dir": show(&s.train),
        "test_dir": show(&s.test),
        "demo": s.demo,
        "parameters": {
            "n_each_img": s.n_each_img,
            "n_each_class": s.n_each_class,
            "maps_per_class": args.maps_per_class,
            "samples_per_class": args.samples_per_class,
            "top": args.top,
            "images_per_class": args.images_per_class,
            "pattern_mode": mode.as_str(),
            "pattern_steps": s.pattern_steps,
            "seed": args.seed,
            "style": args.style,
            "batch_size": viz.batch_size(),
        },
        "timings_s": t.0.iter().map(|(k, v)| json!({"stage": k, "seconds": v})).collect::<Vec<_>>(),
        "total_s": started.elapsed().as_secs_f64(),
    });
    write_json(&out.join("results.json"), &Value::Object(results))?;
    write_json(&out.join("manifest.json"), &manifest)?;
    crate::output::write_atomic(&out.join("index.html"), page.finish(&manifest).as_bytes())?;
    eprintln!(
        "report written to {} ({:.1} s)",
        show(&out.join("index.html")),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
