//! `fmv patterns`: the JSON contract, parity with the original from its own initial image,
//! several filters, and bad arguments.

use serde_json::Value;

use crate::{fmv, json_of, scratch, stderr_of_failure, testdata, weights};

#[test]
fn compat_run_from_the_originals_initial_image_follows_it() {
    let dir = scratch("patterns");
    let g: Value = serde_json::from_str(
        &std::fs::read_to_string(testdata().join("reference/golden/vgg16_small_seed1__dsA.json"))
            .unwrap(),
    )
    .unwrap();
    let vp = &g["visualize_patterns"];
    let init: Vec<u8> = vp["init_image_uint8_hwc"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u8)
        .collect();
    let init_png = dir.join("init.png");
    image::RgbImage::from_raw(33, 33, init)
        .unwrap()
        .save(&init_png)
        .unwrap();
    let out = dir.join("pattern.png");
    let w = weights("vgg16_small_seed1");
    let v = json_of(&fmv(&[
        "patterns",
        "--weights",
        &w,
        "--layer",
        "12",
        "--filter",
        &vp["call"]["filter_n"].to_string(),
        "--mode",
        "compat",
        "--init-image",
        init_png.to_str().unwrap(),
        "--opt-steps",
        "5",
        "--upscaling-steps",
        "3",
        "-o",
        out.to_str().unwrap(),
        "--json",
    ]));
    for key in [
        "layer",
        "filter",
        "mode",
        "seed",
        "steps",
        "activation_trace",
        "final_activation",
        "width",
        "height",
        "output",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    // 5 steps at each of 3 scales.
    assert_eq!(v["steps"].as_u64(), Some(15));
    assert_eq!(
        (v["layer"].as_str(), v["mode"].as_str(), v["seed"].as_u64()),
        (Some("features.28"), Some("compat"), Some(0))
    );
    let trace = v["activation_trace"].as_array().unwrap();
    let want = vp["per_step_activation_f64"].as_array().unwrap();
    assert_eq!(trace.len(), want.len());
    for (a, b) in trace.iter().zip(want) {
        let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
        assert!((a - b).abs() <= 0.05 * b.abs(), "{a} vs the original's {b}");
    }
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(46), Some(46))
    );
    let png = image::open(&out).unwrap();
    assert_eq!((png.width(), png.height()), (46, 46));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn several_filters_give_an_array_and_one_png_each() {
    let dir = scratch("patterns-batch");
    let out = dir.join("p.png");
    let w = weights("vgg16_small_seed1");
    let v = json_of(&fmv(&[
        "patterns",
        "--weights",
        &w,
        "--layer",
        "features.28",
        "--filter",
        "3,59",
        "--steps",
        "3",
        "--size",
        "48",
        "--preprocess",
        "original",
        "--reference-images",
        &testdata()
            .join("reference/data/dsA/test/cat")
            .display()
            .to_string(),
        "-o",
        out.to_str().unwrap(),
        "--json",
    ]));
    let docs = v.as_array().unwrap();
    assert_eq!(docs.len(), 2);
    for (d, f) in docs.iter().zip([3, 59]) {
        assert_eq!(d["filter"], f);
        assert_eq!(d["mode"], "robust");
        assert_eq!(d["activation_trace"].as_array().unwrap().len(), 3);
        let file = dir.join(format!("p_{f}.png"));
        assert_eq!(d["output"].as_str().unwrap(), file.to_str().unwrap());
        assert_eq!(image::open(&file).unwrap().width(), 48);
        assert!(d["reference_max_activation"].as_f64().unwrap() > 0.0);
        assert!(d["ratio_to_reference"].as_f64().is_some());
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_pattern_arguments_are_named() {
    let w = weights("resnet50_small_seed1");
    let base = [
        "patterns",
        "--weights",
        w.as_str(),
        "--layer",
        "-2",
        "-o",
        "/tmp/fmv-never-written.png",
    ];
    let with = |extra: &[&str]| {
        let mut a = base.to_vec();
        a.extend_from_slice(extra);
        stderr_of_failure(&fmv(&a))
    };
    let msg = with(&["--filter", "256"]);
    assert!(
        msg.contains("channel 256 does not exist in layer `layer4.1`"),
        "{msg}"
    );
    // A negative number reaches fmv's own check rather than being read as a flag.
    for factor in ["1", "-2"] {
        let msg = with(&[
            "--filter",
            "1",
            "--mode",
            "compat",
            "--upscaling-factor",
            factor,
        ]);
        assert!(
            msg.contains("invalid --upscaling-factor") && msg.contains("greater than 1"),
            "{msg}"
        );
    }
    let msg = with(&["--filter", "1", "--mode", "compat", "--opt-steps", "0"]);
    assert!(msg.contains("--opt-steps"), "{msg}");
    let msg = with(&["--filter", "1", "--mode", "compat", "--steps", "10"]);
    assert!(msg.contains("--steps applies to --mode robust"), "{msg}");
    let msg = with(&["--filter", "1", "--mode", "compat", "--all-steps"]);
    assert!(
        msg.contains("--all-steps applies to --mode robust"),
        "{msg}"
    );
    let msg = with(&["--filter", "1", "--init-size", "20"]);
    assert!(
        msg.contains("--init-size applies to --mode compat"),
        "{msg}"
    );
    let msg = with(&["--filter", "1", "--steps", "0"]);
    assert!(msg.contains("--steps"), "{msg}");
    let msg = with(&["--filter", "1", "--lr", "-1"]);
    assert!(msg.contains("invalid --lr: must be positive"), "{msg}");
    assert!(!std::path::Path::new("/tmp/fmv-never-written.png").exists());
    // fmv writes PNG only: another extension would name a PNG as something else.
    let jpg = std::env::temp_dir().join(format!("fmv-never-written-{}.jpg", std::process::id()));
    let mut a = base.to_vec();
    a.pop();
    a.extend_from_slice(&[jpg.to_str().unwrap(), "--filter", "1"]);
    let msg = stderr_of_failure(&fmv(&a));
    assert!(
        msg.contains("fmv writes PNG images, not .jpg") && msg.contains(".png"),
        "{msg}"
    );
    assert!(!jpg.exists());
}

/// A safetensors file of `tensors` (`name`, shape, f32 values), written by hand: 8 bytes of
/// header length, the JSON header, the data.
fn write_safetensors(path: &std::path::Path, tensors: &[(&str, Vec<usize>, Vec<f32>)]) {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, shape, values) in tensors {
        let start = data.len();
        data.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let header = serde_json::to_vec(&header).unwrap();
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header);
    bytes.extend(data);
    std::fs::write(path, bytes).unwrap();
}

/// A map that is 0 for every input (a convolution with a negative bias and no weight) gives no
/// gradient, so its pattern is the starting noise: said, not passed off as a pattern.
#[test]
fn a_map_that_never_fires_is_said_to() {
    let dir = scratch("never-fires");
    let w = dir.join("dead.safetensors");
    write_safetensors(
        &w,
        &[
            ("features.0.weight", vec![2, 3, 3, 3], vec![0.0; 54]),
            ("features.0.bias", vec![2], vec![-1.0, -1.0]),
        ],
    );
    let out = dir.join("p.png");
    let run = fmv(&[
        "patterns",
        "--weights",
        &w.display().to_string(),
        "--layer",
        "features.0",
        "--filter",
        "1",
        "--steps",
        "4",
        "--size",
        "32",
        "-o",
        &out.display().to_string(),
    ]);
    assert!(run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("warning: filter 1 of features.0 never fired") && err.contains("--seed"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
