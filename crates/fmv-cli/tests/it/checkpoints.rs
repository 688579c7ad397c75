//! Real checkpoints through the CLI: torchvision's and timm's preprocessing flags, a timm
//! `config.json` beside the weights, `--labels`, `--head`, `--state-key`, and the file that
//! cannot be read (a whole pickled module).

use fmv::Preprocess;
use fmv::core::pixels::Interpolation;
use serde_json::Value;

use crate::{fmv, json_of, scratch, stderr_of_failure, testdata, weights};

fn torch_file(name: &str) -> String {
    testdata().join("torch").join(name).display().to_string()
}

fn cat_image() -> String {
    testdata()
        .join("reference/data/dsA/test/cat/cat_0.jpg")
        .display()
        .to_string()
}

/// `fmv activations --json` at `logits` of the weights `w` on a cat, with `extra` flags.
fn logits_of(w: &str, extra: &[&str]) -> std::process::Output {
    let image = cat_image();
    let mut args = vec!["activations", "--weights", w, "--layer", "logits", "--json"];
    args.extend_from_slice(extra);
    args.push(&image);
    fmv(&args)
}

/// [`logits_of`] the small reference ResNet.
fn logits(extra: &[&str]) -> std::process::Output {
    logits_of(&weights("resnet50_small_seed1"), extra)
}

/// The flags of each configuration of `testdata/torch/transforms.json` (whose tensors the
/// library test checks against torchvision's) make the preprocessing the library test builds.
#[test]
fn the_preprocessing_flags_are_the_ones_checked_against_torchvision() {
    let text = std::fs::read_to_string(testdata().join("torch/transforms.json")).unwrap();
    let golden: Value = serde_json::from_str(&text).unwrap();
    let tv = Preprocess::torchvision;
    for (name, p) in [
        ("torchvision", tv()),
        (
            "timm_bicubic_crop_pct_0.95",
            tv().with_resize(235)
                .with_interpolation(Interpolation::Bicubic),
        ),
        ("pad_and_crop", tv().with_resize(100).with_crop(90, 120)),
        ("odd_sizes", tv().with_resize(161).with_crop(131, 97)),
    ] {
        let flags: Vec<String> = serde_json::from_value(golden["configs"][name].clone()).unwrap();
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let v = json_of(&logits(&flags));
        assert_eq!(v["preprocess"], p.name(), "{name}");
    }
}

#[test]
fn size_and_crop_belong_to_their_own_geometry() {
    let err = stderr_of_failure(&logits(&["--preprocess", "torchvision", "--size", "200"]));
    assert!(err.contains("set that size with --crop"), "{err}");
    let err = stderr_of_failure(&logits(&["--crop", "200"]));
    assert!(
        err.contains("--crop crops the centre after --resize"),
        "{err}"
    );
    // --resize turns a squash preset into torchvision's geometry, recorded.
    let v = json_of(&logits(&["--resize", "240", "--crop", "200"]));
    assert_eq!(v["preprocess"], "imagenet,resize=240,crop=200x200");
}

#[test]
fn labels_name_the_logits_and_must_fit_the_head() {
    let dir = scratch("labels");
    let lines = dir.join("labels.txt");
    std::fs::write(&lines, "cat\ncoffee\n").unwrap();
    let v = json_of(&logits(&["--labels", &lines.display().to_string()]));
    assert_eq!(v["labels"], serde_json::json!(["cat", "coffee"]));
    let list = dir.join("labels.json");
    std::fs::write(&list, r#"["a", "b", "c"]"#).unwrap();
    let err = stderr_of_failure(&logits(&["--labels", &list.display().to_string()]));
    assert!(
        err.contains("labels.json") && err.contains("names 3 classes") && err.contains("2 outputs"),
        "{err}"
    );
    std::fs::write(&lines, "cat\n\ncoffee\n").unwrap();
    let err = stderr_of_failure(&logits(&["--labels", &lines.display().to_string()]));
    assert!(err.contains("line 2 is empty"), "{err}");
    // Without labels, indices only: no `labels` key.
    assert!(json_of(&logits(&[])).get("labels").is_none());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A timm `config.json` beside the weights sets the preprocessing (said on stderr) and the
/// class names; `--preprocess` overrides the former.
#[test]
fn a_timm_config_beside_the_weights_is_used() {
    let dir = scratch("timm-config");
    let w = dir.join("model.safetensors");
    std::fs::copy(weights("resnet50_small_seed1"), &w).unwrap();
    std::fs::write(
        dir.join("config.json"),
        r#"{"architecture": "resnet50", "num_classes": 2,
            "pretrained_cfg": {"input_size": [3, 224, 224], "interpolation": "bicubic",
              "crop_pct": 0.95, "crop_mode": "center", "mean": [0.485, 0.456, 0.406],
              "std": [0.229, 0.224, 0.225], "num_classes": 2, "classifier": "fc"},
            "label_names": ["tabby", "espresso"]}"#,
    )
    .unwrap();
    let run = |extra: &[&str]| logits_of(&w.display().to_string(), extra);
    let out = run(&[]);
    let v = json_of(&out);
    assert_eq!(
        v["preprocess"],
        "torchvision,resize=235,interpolation=bicubic"
    );
    assert_eq!(v["labels"], serde_json::json!(["tabby", "espresso"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("note: preprocessing from") && err.contains("config.json"),
        "{err}"
    );
    let v = json_of(&run(&["--preprocess", "imagenet"]));
    assert_eq!(v["preprocess"], "imagenet");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn layers_shows_the_head_and_head_layouts_are_checked() {
    let w = torch_file("narrow_resnet18.safetensors");
    let v = json_of(&fmv(&["layers", "--weights", &w, "--json"]));
    assert_eq!(v["head"], "fc Linear(64→5)");
    let v = json_of(&fmv(&[
        "layers",
        "--weights",
        &w,
        "--json",
        "--head",
        "linear",
    ]));
    assert_eq!(v["head"], "fc Linear(64→5)");
    let err = stderr_of_failure(&fmv(&[
        "layers",
        "--weights",
        &w,
        "--head",
        "linear,relu,linear",
    ]));
    assert!(
        err.contains("the head layout `linear,relu,linear` does not fit the classifier `fc`")
            && err.contains("single layer at `fc`, whose layout is `linear`"),
        "{err}"
    );
    let err = stderr_of_failure(&fmv(&[
        "layers",
        "--weights",
        &w,
        "--head",
        "linear,softmax",
    ]));
    assert!(err.contains("unknown head module `softmax`"), "{err}");
    let v = json_of(&fmv(&[
        "layers",
        "--weights",
        &torch_file("vgg_features_wrapped.pth"),
        "--json",
    ]));
    assert_eq!(v["head"], Value::Null);
}

#[test]
fn state_key_picks_an_ema_copy_and_a_pickled_module_is_refused() {
    let ema = torch_file("wrapped/model_ema.pth");
    json_of(&fmv(&[
        "layers",
        "--weights",
        &ema,
        "--json",
        "--state-key",
        "model_ema",
    ]));
    let err = stderr_of_failure(&fmv(&["layers", "--weights", &ema, "--state-key", "ema"]));
    assert!(err.contains("`model`, `model_ema`"), "{err}");
    let err = stderr_of_failure(&fmv(&[
        "layers",
        "--weights",
        &torch_file("wrapped/whole_module.pth"),
    ]));
    assert!(err.contains("torch.save(model.state_dict()"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}
