//! `fmv overlay`: one map, or several maps summed, over many images (viz 3 / viz 4), written
//! as one PNG per image.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use fmv::core::{Error as CoreError, ImageList, Observer};
use fmv::report::documents::{SkippedDocument, show};
use fmv::report::draw::original_overlay;
use fmv::{Backbone, Event, Family, FilterMapsConfig, ImageMaps};
use serde::Serialize;

use crate::Outcome;
use crate::args::{LayerArg, ModelArgs, PreprocessArgs, print_json};
use crate::output::{encode_png, ensure_writable_dir, write_atomic};
use crate::session::Session;

/// Options of `fmv overlay`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    preprocess: PreprocessArgs,
    #[command(flatten)]
    layer: LayerArg,
    /// One channel, or several (comma-separated) whose maps are summed.
    #[arg(long, value_delimiter = ',', required = true, value_name = "K[,K...]")]
    filters: Vec<usize>,
    /// Folder of images (sorted by name); an ImageFolder's class sub-folders are walked too.
    #[arg(long, value_name = "DIR")]
    images: PathBuf,
    /// Output folder for the overlays (created; one PNG per image).
    #[arg(short = 'o', long = "output", value_name = "OUTDIR")]
    output: PathBuf,
    /// Fail on the first file that cannot be used instead of skipping it.
    #[arg(long)]
    strict: bool,
    /// Print one JSON document on stdout.
    #[arg(long)]
    json: bool,
}

/// One image in `fmv overlay --json`.
#[derive(Serialize)]
struct Image {
    path: String,
    mean: f32,
    overlay: String,
}

/// `fmv overlay --json`.
#[derive(Serialize)]
struct Output {
    layer: String,
    filters: Vec<usize>,
    images: Vec<Image>,
    skipped: Vec<SkippedDocument>,
}

/// The images of `dir`: its own image files, then those of each sub-folder (sorted).
fn collect_images(dir: &Path) -> Result<(Vec<PathBuf>, Vec<fmv::Skipped>)> {
    if !dir.is_dir() {
        anyhow::bail!("--images {} is not a folder", dir.display());
    }
    let list = ImageList::open(&[dir.to_path_buf()])?;
    Ok((list.files, list.skipped))
}

/// `OUTDIR/<sub-folder>/<stem>.png`, with the extension kept in the name where two inputs
/// share a stem.
fn output_names(root: &Path, files: &[PathBuf], out: &Path) -> Vec<PathBuf> {
    let key = |f: &PathBuf| {
        let rel = f.strip_prefix(root).unwrap_or(f);
        rel.with_extension("")
    };
    let mut seen: HashMap<PathBuf, usize> = HashMap::new();
    for f in files {
        *seen.entry(key(f)).or_default() += 1;
    }
    files
        .iter()
        .map(|f| {
            let k = key(f);
            let name = if seen[&k] > 1 {
                let ext = f.extension().unwrap_or_default().to_string_lossy();
                format!("{}_{ext}.png", k.display())
            } else {
                format!("{}.png", k.display())
            };
            out.join(name)
        })
        .collect()
}

/// Draws and writes each image's overlay as its maps stream in; a failed write stops the run
/// and is reported.
struct Drawing<'a> {
    session: Session,
    family: Family,
    out_of: HashMap<&'a PathBuf, &'a PathBuf>,
    images: Vec<Image>,
    failed: Option<anyhow::Error>,
}

impl Drawing<'_> {
    fn write(&self, m: &ImageMaps) -> Result<Image> {
        let target = self.out_of[&m.path];
        let png = encode_png(&original_overlay(m, self.family)?)?;
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", parent.display()))?;
        }
        write_atomic(target, &png)?;
        Ok(Image {
            path: show(&m.path),
            mean: m.mean,
            overlay: show(target),
        })
    }
}

impl Observer for Drawing<'_> {
    fn on_event(&mut self, event: &Event<'_>) {
        if let Event::Maps(m) = event
            && self.failed.is_none()
        {
            match self.write(m) {
                Ok(image) => self.images.push(image),
                Err(e) => self.failed = Some(e),
            }
        }
        self.session.on_event(event);
    }

    fn should_stop(&mut self) -> bool {
        self.failed.is_some() || self.session.should_stop()
    }
}

pub fn run(args: Args) -> Result<Outcome> {
    let inputs = args.model.inputs().add(&args.images, "--images");
    inputs.refuse_folder(&args.output, "--output")?;
    ensure_writable_dir(&args.output)?;
    let preprocess = args.preprocess.build(&args.model)?;
    let (files, mut skipped) = collect_images(&args.images)?;
    let outputs = output_names(&args.images, &files, &args.output);
    let model = args.model.load()?;
    let family = model.family();
    let viz = args.preprocess.visualizer(model, preprocess);
    let layer = args.layer.layer;
    let id = viz.resolve(&layer)?;
    let cfg = FilterMapsConfig::new(layer, args.filters.clone()).with_strict(args.strict);
    let mut drawing = Drawing {
        session: Session::new("images"),
        family,
        out_of: files.iter().zip(&outputs).collect(),
        images: Vec::new(),
        failed: None,
    };
    for s in &skipped {
        drawing.session.say(&format!(
            "warning: skipping {}: {}",
            s.path.display(),
            s.reason
        ));
    }
    let result = viz.filter_maps(&files, &cfg, &mut drawing);
    drop(drawing.session);
    if let Some(e) = drawing.failed {
        return Err(e);
    }
    let interrupted = matches!(result, Err(CoreError::Stopped));
    if !interrupted {
        skipped.extend(result?.skipped);
    }
    let out = Output {
        layer: viz.backbone().layer(id).name.clone(),
        filters: args.filters.clone(),
        images: drawing.images,
        skipped: SkippedDocument::all(&skipped),
    };
    if interrupted {
        eprintln!(
            "interrupted: {} overlays written to {}",
            out.images.len(),
            args.output.display()
        );
        return Ok(Outcome::Interrupted);
    }
    if args.json {
        print_json(&out)?;
        return Ok(Outcome::Done);
    }
    println!(
        "layer {} · filters {:?} · {} overlays in {}",
        out.layer,
        out.filters,
        out.images.len(),
        args.output.display()
    );
    for i in &out.images {
        println!("{:>10.4}  {}", i.mean, i.path);
    }
    Ok(Outcome::Done)
}
