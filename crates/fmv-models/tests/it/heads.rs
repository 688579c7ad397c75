//! Fine-tuned classifier heads: each head of `testdata/torch/heads.json` (Sequentials with
//! gaps, BatchNorm1d before and after Linear layers and between activations, a Dropout first,
//! GELU, a Linear without bias), on the narrow torchvision backbones, gives torch's logits.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use fmv_models::{Backbone, Checkpoint, HeadLayout, LayerRef, LoadOptions, Model};
use serde_json::Value;

use crate::torch_parity::rel_err;
use crate::{means, tensors_of, test_input, testdata};

/// The golden file's cases: name → (backbone file, head prefix, layout, input, logits).
fn cases() -> Vec<(String, Value)> {
    let text = std::fs::read_to_string(testdata().join("torch/heads.json")).unwrap();
    let map: serde_json::Map<String, Value> = serde_json::from_str(&text).unwrap();
    map.into_iter().collect()
}

/// The backbone of `case` under its fine-tuned head, as one checkpoint.
fn checkpoint(name: &str, case: &Value) -> Checkpoint {
    let prefix = case["prefix"].as_str().unwrap();
    let mut tensors: HashMap<String, Tensor> = tensors_of(
        &testdata()
            .join("torch")
            .join(case["backbone"].as_str().unwrap()),
    )
    .into_iter()
    .filter(|(k, _)| !k.starts_with(&format!("{prefix}.")))
    .collect();
    let heads = tensors_of(&testdata().join("torch/heads.safetensors"));
    let mine = format!("{name}/");
    let n_before = tensors.len();
    for (k, v) in heads {
        if let Some(key) = k.strip_prefix(&mine) {
            tensors.insert(key.to_string(), v);
        }
    }
    assert!(tensors.len() > n_before, "{name} has no head tensors");
    Checkpoint::from_tensors(format!("{name}.safetensors"), tensors).unwrap()
}

fn logits(model: &Model, case: &Value) -> Vec<Vec<f32>> {
    let dims: Vec<usize> = case["input"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let x = test_input(dims[0], dims[1], dims[2]);
    let id = model.resolve(&LayerRef::Name("logits".into())).unwrap();
    means(&model.forward_taps(&x, &[id]).unwrap()[0])
}

fn golden(case: &Value) -> Vec<Vec<f32>> {
    serde_json::from_value(case["logits"].clone()).unwrap()
}

#[test]
fn every_head_gives_torchs_logits() {
    let cases = cases();
    assert_eq!(cases.len(), 8);
    for (name, case) in cases {
        let mut opts = LoadOptions::new();
        if let Some(layout) = case["layout"].as_str() {
            opts = opts.with_head(layout.parse::<HeadLayout>().unwrap());
        }
        let model = Model::from_checkpoint(checkpoint(&name, &case), &opts)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let err = rel_err(&logits(&model, &case), &golden(&case));
        assert!(err <= 1e-5, "{name}: relative error {err:e}");
    }
}

/// The heads that need `--head` are the ones torchvision's convention reads otherwise: without
/// the layout, they load and compute something else, which the test can tell apart.
#[test]
fn the_convention_differs_where_the_layout_is_needed() {
    for (name, case) in cases() {
        if case["layout"].is_null() {
            continue;
        }
        let model = Model::from_checkpoint(checkpoint(&name, &case), &LoadOptions::new())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let err = rel_err(&logits(&model, &case), &golden(&case));
        assert!(err > 1e-3, "{name}: the convention also fits ({err:e})");
    }
}

/// `fmv layers`' description of a head: every module, in order.
#[test]
fn the_head_is_described_as_built() {
    let (name, case) = cases().into_iter().find(|(n, _)| n == "r_bn").unwrap();
    let model = Model::from_checkpoint(checkpoint(&name, &case), &LoadOptions::new()).unwrap();
    let head = model.arch().head().ready().unwrap().to_string();
    assert_eq!(
        head,
        "fc.0 Linear(64→16), fc.1 BatchNorm1d(16), ReLU, Dropout, fc.4 Linear(16→5)"
    );
    assert!(model.arch().description().contains("5 classes"));
}

/// A stated layout that does not fit the file is refused at load, naming both.
#[test]
fn a_layout_that_does_not_fit_is_refused_at_load() {
    let (name, case) = cases()
        .into_iter()
        .find(|(n, _)| n == "v_tumor_like")
        .unwrap();
    let opts = LoadOptions::new().with_head("linear,relu,linear".parse().unwrap());
    let err = Model::from_checkpoint(checkpoint(&name, &case), &opts)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the head layout `linear,relu,linear` does not fit the classifier")
            && err.contains("the file has a layer at `classifier.6`"),
        "{err}"
    );
}

/// A head fmv cannot interpret (a LayerNorm) loads; every feature map works, and `logits` say
/// what could not be read.
#[test]
fn an_uninterpretable_head_fails_only_for_logits() {
    let mut tensors: HashMap<String, Tensor> =
        tensors_of(&testdata().join("torch/narrow_resnet18.safetensors"));
    tensors.retain(|k, _| !k.starts_with("fc."));
    let ln = |v: f32| Tensor::new(&[v; 64], &Device::Cpu).unwrap();
    tensors.insert("fc.0.weight".into(), ln(1.0));
    tensors.insert("fc.0.bias".into(), ln(0.0));
    tensors.insert(
        "fc.1.weight".into(),
        Tensor::zeros((5, 64), candle_core::DType::F32, &Device::Cpu).unwrap(),
    );
    let ck = Checkpoint::from_tensors("layernorm.safetensors", tensors).unwrap();
    let model = Model::from_checkpoint(ck, &LoadOptions::new()).unwrap();
    let id = model.resolve(&LayerRef::Name("layer4.1".into())).unwrap();
    let maps = model.forward_taps(&test_input(1, 64, 64), &[id]).unwrap();
    assert_eq!(maps[0].dims(), &[1, 64, 2, 2]);
    let err = model
        .resolve(&LayerRef::Name("logits".into()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("head `fc` cannot be interpreted")
            && err.contains("`fc.0`")
            && err.contains("LayerNorm")
            && err.contains("their layout can be stated"),
        "{err}"
    );
    assert!(
        model
            .arch()
            .description()
            .contains("head `fc` not interpreted")
    );
}

/// A layout stated for a file without a classifier is refused, not ignored.
#[test]
fn a_layout_for_a_headless_file_is_refused() {
    let mut tensors = tensors_of(&testdata().join("torch/narrow_vgg11_bn.safetensors"));
    tensors.retain(|k, _| k.starts_with("features."));
    let ck = Checkpoint::from_tensors("headless.safetensors", tensors).unwrap();
    let opts = LoadOptions::new().with_head("linear".parse().unwrap());
    let err = Model::from_checkpoint(ck, &opts).unwrap_err().to_string();
    assert!(
        err.contains("the head layout `linear` does not fit")
            && err.contains("it has no classifier"),
        "{err}"
    );
}
