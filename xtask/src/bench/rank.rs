//! `fmv rank` as a whole process (start-up, loading, decoding, forward passes, output) over a
//! generated two-class folder of 384×384 JPEGs: ms per image and the process's own peak RSS.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Result;
use fmv_core::demo::{DemoClass, generate};

use super::forward::{resnet50, vgg16};
use super::{Original, Row, fmv_binary, root, run_measured, weights_file};

const SIDE: usize = 384;

/// `target/bench/images-N/{blobs,stripes}/*.jpg`, `n` images in all, written once (then
/// marked by `images-N.done`).
fn make_folder(n: usize) -> Result<PathBuf> {
    let dir = root().join(format!("target/bench/images-{n}"));
    let done = dir.with_extension("done");
    if done.exists() {
        return Ok(dir);
    }
    for (c, class) in [DemoClass::Blobs, DemoClass::Stripes]
        .into_iter()
        .enumerate()
    {
        let out = dir.join(class.name());
        std::fs::create_dir_all(&out)?;
        for i in 0..n / 2 {
            let img = generate(class, (c * n + i) as u64, SIDE);
            let mut comp = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_RGB);
            comp.set_size(img.width, img.height);
            comp.set_quality(90.0);
            let mut started = comp.start_compress(Vec::new())?;
            started.write_scanlines(&img.pixels)?;
            std::fs::write(out.join(format!("{i:05}.jpg")), started.finish()?)?;
        }
    }
    std::fs::write(done, "")?;
    Ok(dir)
}

pub fn rows(images: usize, full: bool, original: Option<&Original>) -> Result<Vec<Row>> {
    let fmv = fmv_binary()?;
    let mut rows = Vec::new();
    let mut runs = vec![
        (resnet50(), 1u64, -2i64, "layer4.1", images),
        (vgg16(), 2, 12, "features.28", images),
    ];
    if full {
        runs.push((resnet50(), 1, -2, "layer4.1", 4 * images));
    }
    for (arch, seed, layer, name, n) in runs {
        let dir = make_folder(n)?;
        let weights = weights_file(&arch, seed)?;
        let mut cmd = Command::new(&fmv);
        cmd.args(["rank", "--preprocess", "original", "--weights"])
            .arg(&weights)
            .args(["--layer", &layer.to_string(), "--train-dir"])
            .arg(&dir)
            .args(["--json"])
            .stdout(std::process::Stdio::null());
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
        rows.push(row);
    }
    Ok(rows)
}
