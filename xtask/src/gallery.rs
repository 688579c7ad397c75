//! `cargo xtask gallery [--check]`: regenerates `docs/gallery/` from the embedded demo's
//! report (the README shows these pictures), or with `--check` compares a fresh run with the
//! committed pictures (per-pixel tolerance, as the golden-image tests). CI runs the check.
//!
//! It makes the report `fmv report` makes without arguments, through the `fmv-report` library,
//! in `target/gallery-report`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use fmv_core::{ImageFolder, Visualizer};
use fmv_models::LoadOptions;
use fmv_models::demo::DemoNet;
use fmv_render::{Tile, Tolerance, grid, image, image_difference, png_bytes};
use fmv_report::{Folders, demo};

const GALLERY: &str = "docs/gallery";
const REPORT: &str = "target/gallery-report";

/// The first file (by name) with extension `png` in `dir`, leaving out plot files.
fn first_png(dir: &Path) -> Result<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == "png")
                && !p.to_string_lossy().ends_with("_means.png")
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .next()
        .with_context(|| format!("no PNG in {}", dir.display()))
}

/// The gallery's pictures, made from the report in `report`: `(name, image)`.
fn pictures(report: &Path) -> Result<Vec<(&'static str, image::RgbImage)>> {
    let open = |p: PathBuf| -> Result<image::RgbImage> {
        Ok(image::open(&p)
            .with_context(|| format!("cannot read {}", p.display()))?
            .to_rgb8())
    };
    let mut patterns: Vec<PathBuf> = std::fs::read_dir(report.join("patterns"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    patterns.sort();
    let tiles = patterns
        .iter()
        .map(|p| {
            let stem = p.file_stem().unwrap_or_default().to_string_lossy();
            let title = match stem.rsplit_once('_') {
                Some((class, filter)) => format!("{class} · filter {filter}"),
                None => stem.into_owned(),
            };
            Ok(Tile {
                image: open(p.clone())?,
                title,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(vec![
        ("rank", open(report.join("rank.png"))?),
        ("patterns", grid(&tiles, 4, 128)?),
        ("top-maps", open(first_png(&report.join("top-maps"))?)?),
        ("one-map", open(first_png(&report.join("one-map"))?)?),
        (
            "summed-maps",
            open(first_png(&report.join("summed-maps"))?)?,
        ),
        ("class-sums", open(report.join("class-sums.png"))?),
        ("exemplars", open(first_png(&report.join("exemplars"))?)?),
        ("ablation", open(report.join("ablation.png"))?),
    ])
}

/// Writes the embedded demo's report (the ResNet's, as `fmv report -o DIR`) into `dir`.
fn demo_report(dir: &Path) -> Result<()> {
    let net = DemoNet::ResNet;
    let (train, test) = demo::write_folders(&dir.join("data"))?;
    let (train, test) = (
        ImageFolder::open(train, None)?,
        ImageFolder::open(test, None)?,
    );
    let viz = Visualizer::new(net.load(&LoadOptions::new())?).with_preprocess(demo::preprocess());
    let folders = Folders {
        train: &train,
        test: &test,
    };
    let report = fmv_report::report(&viz, folders, &demo::config(net), &mut ())?;
    for file in report.files()? {
        let path = dir.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, &file.bytes)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Runs `cargo xtask gallery`.
pub fn run(check: bool) -> Result<()> {
    // As `fmv` starts. SAFETY: xtask's main thread, before the report starts any thread or
    // candle op.
    fmv_core::process::tune_glibc_malloc();
    unsafe { fmv_core::process::disable_candle_thread_pool() };
    let _ = std::fs::remove_dir_all(REPORT);
    demo_report(Path::new(REPORT))?;
    let pictures = pictures(Path::new(REPORT))?;
    std::fs::create_dir_all(GALLERY)?;
    let mut failures = Vec::new();
    for (name, img) in &pictures {
        let path = Path::new(GALLERY).join(format!("{name}.png"));
        if check {
            let committed = image::open(&path)
                .with_context(|| format!("cannot read {}", path.display()))?
                .to_rgb8();
            if let Some(why) = image_difference(img, &committed, Tolerance::default()) {
                failures.push(format!("{}: {why}", path.display()));
            }
        } else {
            std::fs::write(&path, png_bytes(img)?)?;
            println!("wrote {}", path.display());
        }
    }
    if !failures.is_empty() {
        bail!(
            "the gallery differs from a fresh run:\n  {}\n(run `cargo xtask gallery` to regenerate it)",
            failures.join("\n  ")
        );
    }
    if check {
        println!("{GALLERY} matches a fresh run of the demo report");
    }
    Ok(())
}
