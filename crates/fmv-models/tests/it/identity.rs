//! Where weights came from: a file's identity is its sha256 (checked against `sha256sum`'s), the
//! embedded demo's that of the file it was made from (`models/demo/SHA256SUMS`), and weights
//! built in memory are told apart by their values.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use fmv_models::demo::DemoNet;
use fmv_models::{Backbone, Checkpoint, LoadOptions, Model};

use super::reference_weights;

#[test]
fn a_files_identity_is_its_sha256() {
    let path = reference_weights("resnet50_small_seed1");
    let model = Model::load(&path, &LoadOptions::new()).unwrap();
    let p = model.provenance().unwrap();
    // `sha256sum testdata/reference/weights/resnet50_small_seed1.safetensors`
    assert_eq!(
        p.id.as_str(),
        "67547a6eaf8c8f2b480e81e97f87f640eab36307e74890ab0a99d24d4d08795e"
    );
    assert_eq!(p.file, path.display().to_string());
}

#[test]
fn the_demos_identity_is_that_of_its_file() {
    for (net, file) in [
        (DemoNet::ResNet, "resnet_demo.safetensors"),
        (DemoNet::Vgg, "vgg_demo.safetensors"),
    ] {
        let sums = include_str!("../../../../models/demo/SHA256SUMS");
        let expected = sums
            .lines()
            .find_map(|l| l.strip_suffix(&format!("  {file}")))
            .unwrap();
        let p = net.load(&LoadOptions::new()).unwrap().provenance().unwrap();
        assert_eq!(p.id.as_str(), expected, "{file}");
        assert_eq!(p.file, format!("(embedded) models/demo/{file}"));
    }
}

#[test]
fn weights_in_memory_are_told_apart_by_their_values_not_their_order() {
    let tensors = |bias: f32| -> HashMap<String, Tensor> {
        let mut t = HashMap::new();
        t.insert(
            "features.0.weight".to_string(),
            Tensor::ones((4, 3, 3, 3), DType::F32, &Device::Cpu).unwrap(),
        );
        t.insert(
            "features.0.bias".to_string(),
            Tensor::new(&[bias, 0.0, 0.0, 0.0], &Device::Cpu).unwrap(),
        );
        t
    };
    let id = |t| {
        Checkpoint::from_tensors("toy", t)
            .unwrap()
            .weights_id()
            .unwrap()
    };
    assert_eq!(id(tensors(0.5)), id(tensors(0.5)));
    assert_ne!(id(tensors(0.5)), id(tensors(0.25)));
}
