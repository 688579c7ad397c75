//! `fmv rank` as a whole process (start-up, loading, decoding, forward passes, output) over a
//! generated two-class folder of 384×384 JPEGs: ms per image and the process's own peak RSS.
//! On a GPU, also the same ranking on this machine's CPU, and how far the two rankings differ.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use fmv_core::demo::{DemoClass, generate};
use rayon::prelude::*;
use serde_json::Value;

use super::forward::{resnet50, vgg16};
use super::{Row, Setup, Table, root, run_measured, weights_file};

const SIDE: usize = 384;

/// `target/bench/images-N/{blobs,stripes}/*.jpg`, `n` images in all, written once (then
/// marked by `images-N.done`).
pub(super) fn make_folder(n: usize) -> Result<PathBuf> {
    let dir = root().join(format!("target/bench/images-{n}"));
    let done = dir.with_extension("done");
    if done.exists() {
        return Ok(dir);
    }
    eprintln!("bench: writing {n} JPEGs to {}", dir.display());
    for (c, class) in [DemoClass::Blobs, DemoClass::Stripes]
        .into_iter()
        .enumerate()
    {
        let out = dir.join(class.name());
        std::fs::create_dir_all(&out)?;
        (0..n / 2).into_par_iter().try_for_each(|i| -> Result<()> {
            let img = generate(class, (c * n + i) as u64, SIDE);
            let mut comp = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_RGB);
            comp.set_size(img.width, img.height);
            comp.set_quality(90.0);
            let mut started = comp.start_compress(Vec::new())?;
            started.write_scanlines(&img.pixels)?;
            std::fs::write(out.join(format!("{i:05}.jpg")), started.finish()?)?;
            Ok(())
        })?;
    }
    std::fs::write(done, "")?;
    Ok(dir)
}

/// `fmv rank` with the original's preprocessing, its JSON written to `json`.
fn rank_command(
    mut cmd: Command,
    weights: &Path,
    layer: i64,
    dir: &Path,
    json: &Path,
) -> Result<Command> {
    let out =
        std::fs::File::create(json).with_context(|| format!("cannot write {}", json.display()))?;
    cmd.args(["--preprocess", "original", "--weights"])
        .arg(weights)
        .args(["--layer", &layer.to_string(), "--train-dir"])
        .arg(dir)
        .args(["--json"])
        .stdout(Stdio::from(out));
    Ok(cmd)
}

pub fn rows(setup: &Setup, images: usize, full: bool, table: &Table) -> Result<()> {
    let original = setup.original.as_ref();
    let mut runs = vec![
        (resnet50(), 1u64, -2i64, "layer4.1", images),
        (vgg16(), 2, 12, "features.28", images),
    ];
    if full {
        runs.push((resnet50(), 1, -2, "layer4.1", 4 * images));
    }
    for (arch, seed, layer, name, n) in runs {
        let dir = make_folder(n)?;
        eprintln!("bench: fmv rank, {} on {n} images", arch.name());
        let weights = weights_file(&arch, seed)?;
        let json = dir.with_extension(format!("{}.json", arch.name()));
        let mut cmd = rank_command(setup.fmv("rank"), &weights, layer, &dir, &json)?;
        let (secs, rss) = run_measured(&mut cmd)?;
        let mut row = Row::new(
            format!(
                "`fmv rank`, {} → {name}, {n} JPEGs {SIDE}×{SIDE}, whole process",
                arch.name()
            ),
            "ms/image",
            secs * 1e3 / n as f64,
        )
        .with_rss(rss);
        if let Some(o) = original.filter(|_| n == images) {
            row = row.with_original(o.rank(&arch, seed, layer, &dir)? * 1e3 / n as f64);
        }
        table.print(&row);
        if !setup.device.is_cpu() && n == images {
            let gpu = (layer, name, dir.as_path(), json.as_path());
            table.print(&cpu_rank_row(setup, &arch, &weights, n, gpu)?);
        }
    }
    Ok(())
}

/// How two `fmv rank --json` results differ: whether each class keeps the same maps in the
/// same order, how many of the per-class counts differ (maps entering or leaving an image's
/// top list through a near-tie with the map at its edge), and the largest difference of the
/// per-class mean activations relative to the largest of them.
fn compare_rankings(a: &Value, b: &Value) -> String {
    let same_maps = a["classes"] == b["classes"];
    let (mut differ, mut total) = (0, 0);
    if let (Some(ca), Some(cb)) = (a["counts"].as_object(), b["counts"].as_object()) {
        for (class, counts) in ca {
            let other = cb.get(class).and_then(Value::as_array);
            for (i, v) in counts.as_array().into_iter().flatten().enumerate() {
                total += 1;
                differ += usize::from(other.and_then(|o| o.get(i)) != Some(v));
            }
        }
    }
    let means = |v: &Value| -> Vec<f64> {
        let per_class = v["mean_activation"].as_object().into_iter().flatten();
        per_class
            .flat_map(|(_, m)| m.as_array().into_iter().flatten().filter_map(Value::as_f64))
            .collect()
    };
    let (ma, mb) = (means(a), means(b));
    let scale = mb.iter().fold(0f64, |m, v| m.max(v.abs()));
    let worst = ma
        .iter()
        .zip(&mb)
        .fold(0f64, |m, (x, y)| m.max((x - y).abs()));
    let maps = if same_maps {
        "the same"
    } else {
        "NOT the same"
    };
    format!(
        "{maps} maps per class; {differ} of {total} counts differ; mean activations within {:.1e} of the largest",
        worst / scale
    )
}

/// On a GPU: the same ranking of `n` images on this machine's CPU, and whether it printed the
/// same JSON as the GPU's run `(layer, layer name, folder, JSON)`.
fn cpu_rank_row(
    setup: &Setup,
    arch: &fmv_models::Arch,
    weights: &Path,
    n: usize,
    (layer, name, dir, gpu_json): (i64, &str, &Path, &Path),
) -> Result<Row> {
    let json = dir.with_extension(format!("{}.cpu.json", arch.name()));
    let cmd = setup.fmv_on("rank", "cpu");
    let (secs, rss) = run_measured(&mut rank_command(cmd, weights, layer, dir, &json)?)?;
    let read = |p: &Path| -> Result<Value> {
        let text = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
        serde_json::from_slice(&text).with_context(|| format!("{} is not JSON", p.display()))
    };
    let comparison = compare_rankings(&read(&json)?, &read(gpu_json)?);
    Ok(Row::new(
        format!(
            "`fmv rank`, {} → {name}, the same on the CPU (against {}: {comparison})",
            arch.name(),
            setup.device_name
        ),
        "ms/image",
        secs * 1e3 / n as f64,
    )
    .with_rss(rss))
}
