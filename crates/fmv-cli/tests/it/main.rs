//! Tests of the `fmv` binary: the JSON contracts of each subcommand and its error messages.

mod analysis;
mod checkpoints;
mod inputs;
mod meaning;
mod patterns;
mod report;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// A fresh empty folder for one test, under the folder cargo gives integration tests in
/// `target/` (not the system's temporary folder, where every run would leave one more). A test
/// that passes removes its folder; one that fails leaves it for a look, until the next run.
/// Every test names its own.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fmv-cli-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Copies a folder tree.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let target = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_tree(&p, &target);
        } else {
            std::fs::copy(&p, &target).unwrap();
        }
    }
}

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

fn weights(name: &str) -> String {
    testdata()
        .join(format!("reference/weights/{name}.safetensors"))
        .display()
        .to_string()
}

fn fmv(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fmv"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs `fmv ARGS`, presses Ctrl-C (SIGINT) once the run has saved its first state to
/// `saved`, and returns how it ended.
#[cfg(unix)]
fn interrupt_once_saved(args: &[&str], saved: &Path) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fmv"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    while !saved.exists() {
        assert!(child.try_wait().unwrap().is_none(), "the run ended first");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    child.wait_with_output().unwrap()
}

#[track_caller]
fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "fmv failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON document")
}

#[track_caller]
fn stderr_of_failure(out: &Output) -> String {
    assert!(!out.status.success(), "fmv should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn layers_json_lists_every_tap_with_its_size_at_224() {
    let v = json_of(&fmv(&[
        "layers",
        "--weights",
        &weights("resnet50_small_seed1"),
        "--json",
    ]));
    assert_eq!(v["arch"], "resnet50");
    let layers = v["layers"].as_array().unwrap();
    let l41 = layers.iter().find(|l| l["name"] == "layer4.1").unwrap();
    assert_eq!(
        (
            l41["channels"].as_u64(),
            l41["height"].as_u64(),
            l41["width"].as_u64()
        ),
        (Some(256), Some(7), Some(7))
    );
    let conv1 = &layers[0];
    assert_eq!(
        (conv1["name"].as_str(), conv1["height"].as_u64()),
        (Some("conv1"), Some(112))
    );
    assert_eq!(layers.last().unwrap()["name"], "logits");

    let v = json_of(&fmv(&[
        "layers",
        "--json",
        "--weights",
        &weights("vgg16_small_seed1"),
    ]));
    assert_eq!(v["arch"], "vgg16");
    let f28 = v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "features.28")
        .unwrap();
    assert_eq!(
        (f28["channels"].as_u64(), f28["height"].as_u64()),
        (Some(64), Some(14))
    );
}

#[test]
fn activations_json_matches_the_original_and_keeps_the_given_order() {
    let dir = testdata().join("reference/data/dsA/test/cat");
    let golden: Value = serde_json::from_str(
        &std::fs::read_to_string(
            testdata().join("reference/golden/resnet50_small_seed1__dsA.json"),
        )
        .unwrap(),
    )
    .unwrap();
    // A file named first, then a folder (its files sorted by name).
    let first = dir.join("cat_3.png");
    let out = fmv(&[
        "activations",
        "--weights",
        &weights("resnet50_small_seed1"),
        "--layer",
        "-2",
        "--preprocess",
        "original",
        "--top",
        "5",
        "--batch-size",
        "3",
        "--json",
        first.to_str().unwrap(),
        dir.to_str().unwrap(),
    ]);
    let v = json_of(&out);
    assert_eq!(v["layer"], "layer4.1");
    assert_eq!(v["preprocess"], "original");
    let images = v["images"].as_array().unwrap();
    let names: Vec<&str> = images
        .iter()
        .map(|i| {
            Path::new(i["path"].as_str().unwrap())
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
        })
        .collect();
    assert_eq!(
        names,
        [
            "cat_3.png",
            "cat_0.jpg",
            "cat_1.png",
            "cat_2.jpg",
            "cat_3.png"
        ]
    );
    for img in images {
        let name = Path::new(img["path"].as_str().unwrap())
            .file_name()
            .unwrap()
            .to_str()
            .unwrap();
        let g = &golden["images"][format!("data/dsA/test/cat/{name}")];
        assert_eq!(img["top"], g["top_n_each_img"]["-2"]["5"]["top"], "{name}");
        let mean = img["mean"].as_array().unwrap();
        let want = g["mean_activations"]["-2"].as_array().unwrap();
        assert_eq!(mean.len(), 256);
        let scale = want
            .iter()
            .fold(0f64, |m, v| m.max(v.as_f64().unwrap().abs()));
        for (a, b) in mean.iter().zip(want) {
            assert!(
                (a.as_f64().unwrap() - b.as_f64().unwrap()).abs() <= 1e-4 * scale,
                "{name}"
            );
        }
    }
}

#[test]
fn a_stray_file_in_a_folder_is_skipped_with_a_warning() {
    let dir = scratch("stray-activations");
    std::fs::copy(
        testdata().join("reference/data/dsA/test/cat/cat_1.png"),
        dir.join("a.png"),
    )
    .unwrap();
    std::fs::write(dir.join("notes.txt"), "not an image").unwrap();
    let out = fmv(&[
        "activations",
        "--weights",
        &weights("vgg16_small_seed1"),
        "--layer",
        "features.28",
        "--json",
        dir.to_str().unwrap(),
    ]);
    let v = json_of(&out);
    assert_eq!(v["images"].as_array().unwrap().len(), 1);
    assert_eq!(v["preprocess"], "imagenet");
    assert!(
        v["skipped"][0]["path"]
            .as_str()
            .unwrap()
            .ends_with("notes.txt")
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: skipping") && stderr.contains("notes.txt"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn errors_name_the_problem_and_exit_non_zero() {
    let w = weights("vgg16_small_seed1");
    let img = testdata().join("reference/data/dsA/test/cat/cat_1.png");
    let img = img.to_str().unwrap();
    // `fmv activations --weights W --layer L EXTRA...`, which must fail; its stderr.
    let fail = |layer: &str, extra: &[&str]| {
        let mut a = vec!["activations", "--weights", w.as_str(), "--layer", layer];
        a.extend_from_slice(extra);
        stderr_of_failure(&fmv(&a))
    };
    let msg = fail("layer4.1", &[img]);
    assert!(
        msg.contains("unknown layer `layer4.1`; valid layers: features.0"),
        "{msg}"
    );
    let msg = fail("12", &["--device", "cuda", img]);
    assert!(msg.contains("device `cuda` is not available"), "{msg}");
    let msg = fail("12", &["--size", "0", img]);
    assert!(msg.contains("--size"), "{msg}");
    let msg = fail("12", &["--preprocess", "caffe", img]);
    assert!(
        msg.contains("invalid value 'caffe' for '--preprocess <PRESET>'")
            && msg.contains("[possible values: imagenet, original, torchvision]"),
        "{msg}"
    );
    let msg = fail("12", &["/nonexistent/x.png"]);
    assert!(msg.contains("/nonexistent/x.png"), "{msg}");
    let dir = scratch("notes");
    let notes = dir.join("notes.txt");
    std::fs::write(&notes, "hello").unwrap();
    let msg = fail("12", &[notes.to_str().unwrap()]);
    assert!(msg.contains("is not an image"), "{msg}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Folder analyses check their batch's maps against the memory Linux says is available before
/// the first image goes through the network.
#[cfg(target_os = "linux")]
#[test]
fn a_size_too_large_for_the_memory_is_refused_with_the_fix() {
    let img = testdata().join("reference/data/dsA/test/cat/cat_1.png");
    let out = fmv(&[
        "activations",
        "--weights",
        &weights("vgg16_small_seed1"),
        "--layer",
        "12",
        "--size",
        "1000000",
        img.to_str().unwrap(),
    ]);
    let msg = stderr_of_failure(&out);
    assert!(
        msg.contains("a batch of 1 image(s) at 1000000x1000000 px needs at least ")
            && msg.contains("of memory for its maps (up to `features.28`)")
            && msg.contains("lower --size or --batch-size"),
        "{msg}"
    );
}
