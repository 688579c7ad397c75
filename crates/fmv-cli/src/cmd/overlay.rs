//! `fmv overlay`: one map, or several maps summed, over many images (viz 3 / viz 4), written
//! as one PNG per image.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use fmv::core::{RgbImage, expand_inputs};
use fmv::render::{MaskScale, overlay};
use fmv::{Backbone, Family, FilterMapsConfig, ImageMaps, LayerRef};
use serde::Serialize;

use crate::args::{LayerArg, ModelArgs, PreprocessArgs, print_json, visualizer};
use crate::output::{SkippedJson, ensure_writable_dir, report_skipped, show, write_atomic};
use crate::progress::Progress;

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

#[derive(Serialize)]
struct Image {
    path: String,
    mean: f32,
    overlay: String,
}

#[derive(Serialize)]
struct Output {
    layer: String,
    filters: Vec<usize>,
    images: Vec<Image>,
    skipped: Vec<SkippedJson>,
}

/// The images of `dir`: its own image files, then those of each sub-folder (sorted), each
/// with the sub-folder it came from.
fn collect_images(dir: &Path) -> Result<(Vec<PathBuf>, Vec<fmv::Skipped>)> {
    if !dir.is_dir() {
        anyhow::bail!("--images {} is not a folder", dir.display());
    }
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    if let Ok((f, s)) = expand_inputs(&[dir.to_path_buf()]) {
        files.extend(f);
        skipped.extend(s);
    }
    if let Ok(folder) = fmv::ImageFolder::open(dir, None) {
        for c in folder.classes {
            files.extend(c.files);
        }
        skipped.extend(folder.skipped);
    }
    if files.is_empty() {
        anyhow::bail!(
            "{} contains no image files (directly or in class sub-folders)",
            dir.display()
        );
    }
    Ok((files, skipped))
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

/// Fails if an overlay would replace one of the input images (`-o` is the images' folder, or
/// holds them), before anything is computed.
fn refuse_overwriting_inputs(files: &[PathBuf], outputs: &[PathBuf], out: &Path) -> Result<()> {
    let inputs: std::collections::HashSet<PathBuf> = files
        .iter()
        .filter_map(|f| std::fs::canonicalize(f).ok())
        .collect();
    // An output that does not exist yet replaces nothing.
    if let Some(target) = outputs
        .iter()
        .find(|o| std::fs::canonicalize(o).is_ok_and(|o| inputs.contains(&o)))
    {
        anyhow::bail!(
            "invalid --output {}: the overlay {} would replace that input image; choose an \
             output folder outside the images",
            out.display(),
            target.display()
        );
    }
    Ok(())
}

pub fn run(args: Args) -> Result<()> {
    ensure_writable_dir(&args.output)?;
    let preprocess = args.preprocess.build()?;
    let (files, mut skipped) = collect_images(&args.images)?;
    let outputs = output_names(&args.images, &files, &args.output);
    refuse_overwriting_inputs(&files, &outputs, &args.output)?;
    let out_of: HashMap<&PathBuf, &PathBuf> = files.iter().zip(&outputs).collect();
    let model = args.model.load()?;
    let family = model.family();
    let viz = visualizer(model, preprocess, &args.preprocess);
    let layer: LayerRef = args.layer.get();
    let id = viz.resolve(&layer)?;
    let cfg = FilterMapsConfig::new(layer, args.filters.clone()).with_strict(args.strict);
    let mut images = Vec::new();
    let progress = Progress::new("images");
    let more_skipped = viz.filter_maps(
        &files,
        &cfg,
        &mut |m: ImageMaps| {
            let target = out_of[&m.path];
            let png = draw(&m, family).map_err(|e| fmv::core::Error::InvalidArgument {
                name: "--filters",
                reason: e.to_string(),
            })?;
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(|source| fmv::core::Error::Io {
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
            write_atomic(target, &png).map_err(|e| fmv::core::Error::Io {
                path: target.clone(),
                source: std::io::Error::other(format!("{e:#}")),
            })?;
            images.push(Image {
                path: show(&m.path),
                mean: m.mean,
                overlay: show(target),
            });
            Ok(())
        },
        &mut |e| progress.on_event(e),
    )?;
    drop(progress);
    skipped.extend(more_skipped);
    let out = Output {
        layer: viz.backbone().layer(id).name.clone(),
        filters: args.filters.clone(),
        images,
        skipped: report_skipped(&skipped),
    };
    if args.json {
        return print_json(&out);
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
    Ok(())
}

/// The original's overlay: the map (several maps summed) resized bilinearly to the image,
/// ×2 for ResNet, ÷max for VGG with one filter, multiplied onto the image, clipped.
fn draw(m: &ImageMaps, family: Family) -> Result<Vec<u8>> {
    let (map, scale) = if m.maps.len() == 1 {
        let scale = match family {
            Family::ResNet => MaskScale::Factor(2.0),
            Family::Vgg => MaskScale::DivideByMax,
        };
        (m.maps[0].clone(), scale)
    } else {
        let mut sum = vec![0f32; m.width * m.height];
        for map in &m.maps {
            for (s, v) in sum.iter_mut().zip(map) {
                *s += v;
            }
        }
        (sum, MaskScale::Factor(1.0))
    };
    let img = to_image(&m.input)?;
    let drawn = overlay(&img, &map, m.width, m.height, scale)?;
    let mut png = Vec::new();
    drawn
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .context("cannot encode PNG")?;
    Ok(png)
}

fn to_image(img: &RgbImage) -> Result<image::RgbImage> {
    image::RgbImage::from_raw(img.width as u32, img.height as u32, img.pixels.clone())
        .context("image buffer has the wrong size")
}
