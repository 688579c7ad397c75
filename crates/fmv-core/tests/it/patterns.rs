//! Activation maximisation against the original's `visualize_patterns` goldens, and OpenCV's
//! bicubic resize against OpenCV (`testdata/opencv/make_resize.py`).

use fmv_core::{Mode, PatternConfig, Preprocess, RgbImage, Visualizer, resize_cubic_opencv};
use fmv_models::{LayerRef, LoadOptions, Model};

use crate::golden::{Golden, f32s, root};

#[test]
fn cubic_resize_matches_opencv() {
    let path = root().join("../opencv/resize.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut n = 0;
    for case in v["cases"].as_array().unwrap().iter().filter(|c| c["interp"] == "cubic") {
        let (h, w) = (case["in_hw"][0].as_u64().unwrap() as usize, case["in_hw"][1].as_u64().unwrap() as usize);
        let (oh, ow) = (case["out_hw"][0].as_u64().unwrap() as usize, case["out_hw"][1].as_u64().unwrap() as usize);
        let src = f32s(&case["src_hwc"]);
        let dst = f32s(&case["dst_hwc"]);
        let scale = dst.iter().fold(0f32, |m, v| m.max(v.abs()));
        for c in 0..3 {
            let plane: Vec<f32> = (0..h * w).map(|i| src[i * 3 + c]).collect();
            let out = resize_cubic_opencv(&plane, h, w, oh, ow);
            for i in 0..oh * ow {
                let err = (out[i] - dst[i * 3 + c]).abs();
                assert!(err <= 2e-6 * scale, "{h}x{w} -> {oh}x{ow} channel {c} pixel {i}: {} vs {}", out[i], dst[i * 3 + c]);
            }
        }
        n += 1;
    }
    assert_eq!(n, 3);
}

#[track_caller]
fn check_patterns(name: &str) {
    let golden = Golden::load(name);
    let vp = &golden.json["visualize_patterns"];
    let call = &vp["call"];
    let model = Model::load(golden.weights(), &LoadOptions::new()).unwrap();
    let viz = Visualizer::new(model).with_preprocess(Preprocess::original());
    let init: Vec<u8> = vp["init_image_uint8_hwc"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u8).collect();
    let side = call["init_size"].as_u64().unwrap() as usize;
    let cfg = PatternConfig::new(LayerRef::Compat(call["layer"].as_i64().unwrap()), vec![call["filter_n"].as_u64().unwrap() as usize])
        .with_mode(Mode::Compat)
        .with_init_image(Some(RgbImage { width: side, height: side, pixels: init }))
        .with_lr(call["lr"].as_f64().unwrap())
        .with_opt_steps(call["opt_steps"].as_u64().unwrap() as usize)
        .with_upscaling_steps(call["upscaling_steps"].as_u64().unwrap() as usize)
        .with_upscaling_factor(call["upscaling_factor"].as_f64().unwrap());
    let p = viz.maximize(&cfg, &mut |_| {}, &|| false).unwrap().remove(0);
    let want: Vec<f64> = vp["per_step_activation_f64"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(p.activation_trace.len(), want.len());
    let mut worst = 0f64;
    for (i, (a, g)) in p.activation_trace.iter().zip(&want).enumerate() {
        let rel = (a - g).abs() / g.abs();
        worst = worst.max(rel);
        assert!(rel <= 1e-3, "{name} step {i}: {a} vs the original's {g} (relative {rel:e})");
    }
    let shape: Vec<usize> = vp["final_shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    assert_eq!((p.height, p.width, 3), (shape[0], shape[1], shape[2]));
    let want_img = f32s(&vp["final_image_hwc"]);
    let max_abs = p.image.iter().zip(&want_img).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(max_abs <= 1e-4, "{name}: final image differs by up to {max_abs}");
    eprintln!("{name}: worst relative activation error {worst:e}, final image max abs {max_abs:e}");
}

#[test]
fn compat_patterns_follow_the_original_on_the_resnet() {
    check_patterns("resnet50_small_seed1");
}

#[test]
fn compat_patterns_follow_the_original_on_the_vgg() {
    check_patterns("vgg16_small_seed1");
}
