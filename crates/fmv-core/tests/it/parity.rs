//! Mean activations and logits of both small reference networks on every dsA image, against
//! the original package's goldens.

use fmv_core::{ActivationsConfig, Preprocess, Visualizer};
use fmv_models::{LayerRef, Model};

use crate::golden::{Golden, f32s, load_options, rel_l2_err, rel_max_err, root, usizes};

#[track_caller]
fn check_means_and_logits(name: &str, batch_size: usize) {
    let golden = Golden::load(name);
    let model = Model::load(golden.weights(), &load_options()).unwrap();
    let viz = Visualizer::new(model)
        .with_preprocess(Preprocess::original())
        .with_batch_size(batch_size);
    let images = golden.images();
    let paths: Vec<_> = images.iter().map(|(rel, _)| root().join(rel)).collect();
    let mut layers: Vec<String> = golden.layers().iter().map(|l| l.to_string()).collect();
    layers.push("logits".into());
    for layer in layers {
        let cfg = ActivationsConfig::new(layer.parse::<LayerRef>().unwrap()).with_top(25);
        let got = viz.activations(&paths, &cfg, &mut ()).unwrap();
        for ((rel, entry), img) in images.iter().zip(&got.images) {
            let want = if layer == "logits" {
                f32s(&entry["logits"])
            } else {
                f32s(&entry["mean_activations"][&layer])
            };
            let l2 = rel_l2_err(&img.mean, &want);
            let mx = rel_max_err(&img.mean, &want);
            assert!(
                l2 <= 1e-4 && mx <= 1e-4,
                "{name} layer {layer} {rel}: rel L2 {l2:e}, rel max {mx:e}"
            );
            if layer != "logits" {
                let top = usizes(&entry["top_n_each_img"][&layer]["25"]["top"]);
                assert_same_ranking(
                    &img.top,
                    &top,
                    &want,
                    &format!("{name} layer {layer} {rel}"),
                );
            }
        }
    }
}

/// Near-ties the original itself cannot order: two channels whose golden means differ by less
/// than this fraction of the largest mean. torch's own f32 error on these networks is about
/// 1.3e-5 of the maximum (an f64 forward differs from the goldens by that much), and the one
/// pair in dsA that fmv orders differently (ResNet layer 0, `train/coffee/coffee_8.png`,
/// channels 144 and 220) differs by 8.7e-7 — an f64 forward orders it as fmv does.
const NEAR_TIE: f64 = 1e-5;

/// The top lists must be identical, except that a position may hold another channel whose
/// golden value is within [`NEAR_TIE`] of the golden channel's value.
#[track_caller]
fn assert_same_ranking(got: &[usize], want: &[usize], golden_values: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = golden_values.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let gap = (golden_values[g] as f64 - golden_values[w] as f64).abs() / scale;
        assert!(
            g == w || gap < NEAR_TIE,
            "{what}: position {i} holds channel {g}, the original has {w} (relative gap {gap:e}); got {got:?}, want {want:?}"
        );
    }
}

#[test]
fn resnet_small_means_and_logits_match_goldens() {
    check_means_and_logits("resnet50_small_seed1", 4);
}

#[test]
fn vgg_small_means_and_logits_match_goldens() {
    check_means_and_logits("vgg16_small_seed1", 4);
}

#[test]
fn batch_size_does_not_change_results() {
    check_means_and_logits("resnet50_small_seed1", 1);
}

/// Every layer's means and the logits on every dsA image, at batch 1 and 5, on one thread and
/// on three: the batch is one GEMM for small maps, the GEMM splits its work by thread, and on
/// the CPU a batch is split into one lane per thread (three lanes: 2 + 2 + 1 images), so the
/// order of sums may change, but the results must agree to 1e-5 of each image's largest value.
#[test]
fn results_do_not_depend_on_batch_size_or_threads() {
    for name in ["resnet50_small_seed1", "vgg16_small_seed1"] {
        let golden = Golden::load(name);
        let paths: Vec<_> = golden
            .images()
            .iter()
            .map(|(rel, _)| root().join(rel))
            .collect();
        let mut layers: Vec<String> = golden.layers().iter().map(|l| l.to_string()).collect();
        layers.push("logits".into());
        let means = |batch_size: usize| {
            let model = Model::load(golden.weights(), &load_options()).unwrap();
            let viz = Visualizer::new(model)
                .with_preprocess(Preprocess::original())
                .with_batch_size(batch_size);
            layers
                .iter()
                .map(|layer| {
                    let cfg = ActivationsConfig::new(layer.parse::<LayerRef>().unwrap());
                    let got = viz.activations(&paths, &cfg, &mut ()).unwrap();
                    got.images.into_iter().map(|i| i.mean).collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
        };
        let threads = |n: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .unwrap()
        };
        let reference = means(1);
        for (what, other) in [
            ("batch 5", means(5)),
            ("batch 5 on one thread", threads(1).install(|| means(5))),
            ("batch 5 on three lanes", threads(3).install(|| means(5))),
        ] {
            for ((layer, want), got) in layers.iter().zip(&reference).zip(&other) {
                for (i, (w, g)) in want.iter().zip(got).enumerate() {
                    let err = rel_max_err(g, w);
                    assert!(err <= 1e-5, "{name} {layer} image {i}, {what}: {err:e}");
                }
            }
        }
    }
}
