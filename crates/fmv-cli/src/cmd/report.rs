//! `fmv report`: the whole pipeline in one command (`fmv-report`), written as a static HTML
//! page with its images, every number in `results.json`, and a run manifest. Without weights
//! and folders it runs the embedded demo.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use fmv::core::{Error as CoreError, Observer};
use fmv::models::demo::DemoNet;
use fmv::report::demo;
use fmv::report::documents::show;
use fmv::report::{ReportEvent, ReportObserver};
use fmv::{Folders, ImageFolder, LayerRef, ReportConfig, Style, Visualizer};

use crate::Outcome;
use crate::args::{ModelArgs, PreprocessArgs, layer, load_options};
use crate::cmd::patterns::ModeArg;
use crate::output::{ensure_writable_dir, write_atomic};
use crate::session::Session;

/// `--style`: how maps are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StyleArg {
    // Viridis heat maps with a colour bar.
    Heatmap,
    // The original's grey mask.
    Original,
}

/// `--demo`: which embedded network runs when no weights are given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DemoArg {
    // The demo ResNet.
    Resnet,
    // The demo VGG.
    Vgg,
}

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
    #[arg(long, allow_hyphen_values = true, value_name = "LAYER", value_parser = layer)]
    layer: Option<LayerRef>,
    #[command(flatten)]
    preprocess: PreprocessArgs,
    /// Only these classes, in this order (comma-separated), in both folders. Default: every
    /// sub-folder. With many classes (ImageNet has 1000) pick the ones to look at: each class
    /// costs patterns and pictures.
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    classes: Option<Vec<String>>,
    /// Which embedded demo network runs when no weights are given: resnet or vgg.
    #[arg(long, default_value = "resnet", value_name = "NET", value_enum)]
    demo: DemoArg,
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
    #[arg(long, default_value = "robust", value_name = "MODE", value_enum)]
    mode: ModeArg,
    /// Optimisation steps of each pattern (robust mode). Default: 256 (128 for the demo).
    #[arg(long, value_name = "N")]
    pattern_steps: Option<usize>,
    /// Seed of the patterns.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Overlay style: heatmap (viridis with a colour bar) or original (the grey mask).
    #[arg(long, default_value = "heatmap", value_name = "STYLE", value_enum)]
    style: StyleArg,
    /// Also write the plots as SVG next to the PNGs (linked from the page).
    #[arg(long)]
    svg: bool,
}

/// Everything the pipeline runs on, whether from the user or the demo.
struct Setup {
    viz: Visualizer,
    train: PathBuf,
    test: PathBuf,
    config: ReportConfig,
}

/// `base` (the defaults of a report on the user's network or the demo's) with the settings the
/// flags give.
fn config(args: &Args, base: ReportConfig) -> ReportConfig {
    let (n_each_img, n_each_class, steps) =
        (base.n_each_img(), base.n_each_class(), base.pattern_steps());
    let layer = args.layer.clone().unwrap_or_else(|| base.layer().clone());
    base.with_layer(layer)
        .with_n_each_img(args.n_each_img.unwrap_or(n_each_img))
        .with_n_each_class(args.n_each_class.unwrap_or(n_each_class))
        .with_maps_per_class(args.maps_per_class)
        .with_samples_per_class(args.samples_per_class)
        .with_top(args.top)
        .with_images_per_class(args.images_per_class)
        .with_pattern_mode(args.mode.mode())
        .with_pattern_steps(args.pattern_steps.unwrap_or(steps))
        .with_seed(args.seed)
        .with_style(match args.style {
            StyleArg::Heatmap => Style::Heatmap,
            StyleArg::Original => Style::Original,
        })
        .with_svg(args.svg)
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
    let preprocess = args.preprocess.build(&args.model)?;
    let model = args.model.load()?;
    // The original's default layer, -2; the outputs named where names are given.
    let mut base = ReportConfig::new(LayerRef::Compat(-2));
    if let Some(labels) = args.model.labels(&model)? {
        base = base.with_labels(labels);
    }
    Ok(Setup {
        viz: args.preprocess.visualizer(model, preprocess),
        train: train.clone(),
        test: test.clone(),
        config: config(args, base),
    })
}

fn demo_setup(args: &Args) -> Result<Setup> {
    let net = match args.demo {
        DemoArg::Resnet => DemoNet::ResNet,
        DemoArg::Vgg => DemoNet::Vgg,
    };
    let model = net.load(&load_options()?.with_device(args.model.device()))?;
    let data = args.output.join("data");
    eprintln!("demo: writing generated images to {}", show(&data));
    let (train, test) = demo::write_folders(&data)?;
    Ok(Setup {
        viz: args.preprocess.visualizer(model, demo::preprocess()),
        train,
        test,
        config: config(args, demo::config(net)),
    })
}

/// The report's observer: a line per stage and per class's patterns, the session's bars and
/// warnings, Ctrl-C.
struct Stages {
    session: Session,
    steps: usize,
}

impl ReportObserver for Stages {
    fn on_event(&mut self, event: &ReportEvent<'_>) {
        match event {
            ReportEvent::Stage { index, count, name } => {
                self.session.say(&format!("[{index}/{count}] {name}"))
            }
            ReportEvent::Patterns {
                index,
                count,
                class,
                maps,
            } => self.session.say(&format!(
                "  class {index}/{count} ({class}): maps {maps:?}, {} steps",
                self.steps
            )),
            ReportEvent::Analysis(e) => self.session.on_event(e),
            _ => {}
        }
    }

    fn should_stop(&mut self) -> bool {
        self.session.should_stop()
    }
}

/// Runs `fmv report`.
pub fn run(args: Args) -> Result<Outcome> {
    let started = Instant::now();
    let out = args.output.clone();
    let mut inputs = args.model.inputs();
    for (dir, flag) in [
        (&args.train_dir, "--train-dir"),
        (&args.test_dir, "--test-dir"),
    ] {
        if let Some(dir) = dir {
            inputs = inputs.add(dir, flag);
        }
    }
    inputs.refuse_folder(&out, "--output")?;
    ensure_writable_dir(&out)?;
    let s = setup(&args)?;
    let train = ImageFolder::open(&s.train, args.classes.as_deref())?;
    let test = ImageFolder::open(&s.test, args.classes.as_deref())?;
    let mut stages = Stages {
        session: Session::new("training images"),
        steps: s.config.pattern_steps(),
    };
    let folders = Folders {
        train: &train,
        test: &test,
    };
    let report = match fmv::report::report(&s.viz, folders, &s.config, &mut stages) {
        Err(fmv::report::Error::Analysis(CoreError::Stopped)) => {
            eprintln!("interrupted: no report written");
            return Ok(Outcome::Interrupted);
        }
        other => other?,
    };
    drop(stages);
    for file in report.files()? {
        let path = out.join(&file.path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", show(dir)))?;
        }
        write_atomic(&path, &file.bytes)?;
    }
    eprintln!(
        "report written to {} ({:.1} s)",
        show(&out.join("index.html")),
        started.elapsed().as_secs_f64()
    );
    Ok(Outcome::Done)
}
