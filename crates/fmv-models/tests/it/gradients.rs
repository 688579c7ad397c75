//! Gradients of a tap's channel mean (and of a logit) with respect to the input, against
//! central finite differences in f64, through every op on the path: convolutions (strided,
//! padded, grouped, BatchNorm folded), ReLU, both max pools, residual additions, the adaptive
//! and global average pools and the classifier. And no gradient ever reaches a weight.

use candle_core::{DType, Device, IndexOp, Tensor, Var};
use fmv_models::{Backbone, LayerRef, LoadOptions, Model, Pass, Tile};

use crate::testdata;

fn model(name: &str) -> Model {
    let opts = LoadOptions::new().with_dtype(DType::F64);
    Model::load(testdata().join(format!("torch/{name}.safetensors")), &opts).unwrap()
}

/// A smooth, deterministic input in (0, 1).
fn input(h: usize, w: usize) -> Vec<f64> {
    (0..3 * h * w)
        .map(|i| 0.5 + 0.4 * ((i as f64) * 0.7311).sin() * ((i as f64) * 0.0173).cos())
        .collect()
}

/// The objective: channel `c` of `layer` averaged over space (a logit for `logits`), a tracked
/// input's 3×3 convolutions taking Winograd tiles up to `tile`.
fn objective(m: &Model, x: &Tensor, layer: &str, c: usize, tile: Tile) -> Tensor {
    let id = m.resolve(&LayerRef::Name(layer.into())).unwrap();
    let pass = Pass::from_input().with_tracked_tile(tile);
    let t = m.forward_pass(x, &pass, &[id]).unwrap().remove(0);
    if t.rank() == 4 {
        t.i((0, c)).unwrap().mean_all().unwrap()
    } else {
        t.i((0, c)).unwrap()
    }
}

/// Checks channel `c` of `layer`, or with `None` its most active channel at this input.
#[track_caller]
fn check_gradient(name: &str, layer: &str, c: Option<usize>, hw: (usize, usize)) {
    check_gradient_with(name, layer, c, hw, Tile::F2);
}

/// [`check_gradient`] with the 3×3 convolutions of the tracked pass taking tiles up to `tile`.
#[track_caller]
fn check_gradient_with(name: &str, layer: &str, c: Option<usize>, hw: (usize, usize), tile: Tile) {
    let m = model(name);
    let (h, w) = hw;
    let x0 = input(h, w);
    let c = c.unwrap_or_else(|| {
        let id = m.resolve(&LayerRef::Name(layer.into())).unwrap();
        let x = Tensor::from_vec(x0.clone(), (1, 3, h, w), &Device::Cpu).unwrap();
        let means: Vec<f64> = m.forward_taps(&x, &[id]).unwrap()[0]
            .mean((2, 3))
            .unwrap()
            .i(0)
            .unwrap()
            .to_vec1()
            .unwrap();
        (0..means.len())
            .max_by(|&a, &b| means[a].total_cmp(&means[b]))
            .unwrap()
    });
    let var = Var::from_vec(x0.clone(), (1, 3, h, w), &Device::Cpu).unwrap();
    let f = objective(&m, var.as_tensor(), layer, c, tile);
    let grads = f.backward().unwrap();
    let g: Vec<f64> = grads
        .get(var.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    // No weight receives a gradient, nor any work on one.
    for t in m.weights() {
        assert!(
            grads.get(&t).is_none(),
            "{name}: a weight received a gradient"
        );
    }
    // Central differences on a spread of coordinates.
    let eval = |x: &[f64]| -> f64 {
        let t = Tensor::from_vec(x.to_vec(), (1, 3, h, w), &Device::Cpu).unwrap();
        objective(&m, &t, layer, c, tile)
            .to_scalar::<f64>()
            .unwrap()
    };
    let eps = 1e-6;
    let (mut num, mut den) = (0f64, 0f64);
    let coords: Vec<usize> = (0..48).map(|k| (k * 7919 + 13) % x0.len()).collect();
    for &i in &coords {
        let mut xp = x0.clone();
        xp[i] += eps;
        let mut xm = x0.clone();
        xm[i] -= eps;
        let fd = (eval(&xp) - eval(&xm)) / (2.0 * eps);
        num += (fd - g[i]).powi(2);
        den += fd.powi(2);
    }
    let rel = (num / den).sqrt();
    assert!(
        den > 0.0,
        "{name} {layer}: the gradient vanishes on every probed coordinate"
    );
    assert!(
        rel <= 1e-5,
        "{name} {layer}[{c}]: relative error {rel:e} against finite differences"
    );
}

#[test]
fn resnet_basic_blocks_input_gradient_matches_finite_differences() {
    // Stem conv (stride 2, pad 3), 3×3/2 max pool, basic blocks with strided downsampling.
    check_gradient("narrow_resnet18", "layer3.1", None, (48, 40));
    // Through the global pool and the classifier.
    check_gradient("narrow_resnet18", "logits", Some(2), (40, 40));
}

#[test]
fn resnet_grouped_bottlenecks_input_gradient_matches_finite_differences() {
    check_gradient("narrow_resnext", "layer4.0", None, (40, 48));
}

#[test]
fn vgg_with_batch_norm_input_gradient_matches_finite_differences() {
    // 2×2 pools, BatchNorm folded, then the adaptive 7×7 pool and the classifier.
    check_gradient("narrow_vgg11_bn", "features.25", None, (64, 64));
    check_gradient("narrow_vgg11_bn", "logits", Some(1), (72, 64));
}

/// The input gradient through F(4×4, 3×3) (forward and backward), as robust patterns run it:
/// at these sizes VGG's first four convolutions (64 and 32 px) and ResNet's first stage (28 × 24
/// px) take it.
#[test]
fn f4_input_gradient_matches_finite_differences() {
    check_gradient_with("narrow_vgg11_bn", "features.25", None, (64, 64), Tile::F4);
    check_gradient_with("narrow_resnet18", "layer3.1", None, (112, 96), Tile::F4);
}
