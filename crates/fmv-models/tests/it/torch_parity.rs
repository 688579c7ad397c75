//! Every tap of small networks built from torchvision's own classes (BasicBlock ResNet,
//! grouped Bottleneck, VGG with BatchNorm), on a square and a non-square input, against the
//! values torch computed (`testdata/torch/make_fixtures.py`).

use std::collections::HashMap;

use candle_core::{DType, Tensor};
use fmv_models::{Backbone, Checkpoint, LayerRef, LoadOptions, Model};
use serde_json::Value;

use crate::{means, tensors_of, test_input, testdata};

/// `max |a − g| / max |g|` over one tap's `N×C` values.
pub(crate) fn rel_err(a: &[Vec<f32>], g: &[Vec<f32>]) -> f64 {
    let scale = g.iter().flatten().fold(0f64, |m, v| m.max(v.abs() as f64));
    let err = a
        .iter()
        .flatten()
        .zip(g.iter().flatten())
        .fold(0f64, |m, (x, y)| m.max((*x as f64 - *y as f64).abs()));
    err / scale.max(1e-30)
}

#[track_caller]
fn check_against_torch(model: &Model, name: &str, tol: f64) {
    let text = std::fs::read_to_string(testdata().join(format!("torch/{name}.json"))).unwrap();
    let golden: Value = serde_json::from_str(&text).unwrap();
    for (input, taps) in golden["inputs"].as_object().unwrap() {
        let dims: Vec<usize> = input.split('x').map(|d| d.parse().unwrap()).collect();
        let x = test_input(dims[0], dims[1], dims[2])
            .to_dtype(model.dtype())
            .unwrap();
        let names: Vec<&String> = taps.as_object().unwrap().keys().collect();
        let ids: Vec<_> = names
            .iter()
            .map(|n| model.resolve(&LayerRef::Name((*n).clone())).unwrap())
            .collect();
        let got = model.forward_taps(&x, &ids).unwrap();
        for (n, t) in names.iter().zip(&got) {
            let want: Vec<Vec<f32>> = serde_json::from_value(taps[n.as_str()].clone()).unwrap();
            let err = rel_err(&means(t), &want);
            assert!(err <= tol, "{name} {input} tap {n}: relative error {err:e}");
        }
        assert_eq!(
            names.len(),
            model.layers().len(),
            "{name}: torch recorded every tap"
        );
    }
}

#[test]
fn basic_block_resnet_matches_torch_at_every_tap() {
    let m = Model::load(
        testdata().join("torch/narrow_resnet18.safetensors"),
        &LoadOptions::new(),
    )
    .unwrap();
    assert_eq!(m.arch_name(), "resnet18");
    check_against_torch(&m, "narrow_resnet18", 1e-5);
}

#[test]
fn grouped_bottleneck_resnet_matches_torch_at_every_tap() {
    let m = Model::load(
        testdata().join("torch/narrow_resnext.safetensors"),
        &LoadOptions::new(),
    )
    .unwrap();
    assert_eq!(m.arch_name(), "resnet-custom");
    check_against_torch(&m, "narrow_resnext", 1e-5);
}

#[test]
fn vgg_with_batch_norm_matches_torch_at_every_tap() {
    let m = Model::load(
        testdata().join("torch/narrow_vgg11_bn.safetensors"),
        &LoadOptions::new(),
    )
    .unwrap();
    assert_eq!(m.arch_name(), "vgg11_bn");
    check_against_torch(&m, "narrow_vgg11_bn", 1e-5);
}

#[test]
fn f64_computation_matches_torch_too() {
    let opts = LoadOptions::new().with_dtype(DType::F64);
    let m = Model::load(testdata().join("torch/narrow_resnet18.safetensors"), &opts).unwrap();
    check_against_torch(&m, "narrow_resnet18", 1e-5);
}

#[test]
fn timm_named_vgg_classifier_gives_torchvision_logits() {
    // Rename the classifier as timm does (`pre_logits.fc1` a 7×7 convolution over C channels,
    // `fc2` 1×1, `head.fc`) and check the logits are unchanged.
    let path = testdata().join("torch/narrow_vgg11_bn.safetensors");
    let mut timm: HashMap<String, Tensor> = HashMap::new();
    for (k, v) in tensors_of(&path) {
        let (k, v) = match k.as_str() {
            "classifier.0.weight" => {
                let (o, i) = v.dims2().unwrap();
                (
                    "pre_logits.fc1.weight".to_string(),
                    v.reshape((o, i / 49, 7, 7)).unwrap(),
                )
            }
            "classifier.0.bias" => ("pre_logits.fc1.bias".into(), v),
            "classifier.3.weight" => {
                let (o, i) = v.dims2().unwrap();
                (
                    "pre_logits.fc2.weight".into(),
                    v.reshape((o, i, 1, 1)).unwrap(),
                )
            }
            "classifier.3.bias" => ("pre_logits.fc2.bias".into(), v),
            "classifier.6.weight" => ("head.fc.weight".into(), v),
            "classifier.6.bias" => ("head.fc.bias".into(), v),
            _ => (k, v),
        };
        timm.insert(k, v);
    }
    let m = Model::from_checkpoint(
        Checkpoint::from_tensors("timm", timm).unwrap(),
        &LoadOptions::new(),
    )
    .unwrap();
    assert_eq!(m.checkpoint().scheme().as_str(), "timm");
    check_against_torch(&m, "narrow_vgg11_bn", 1e-5);
}
