//! Architecture inference and key checking against the real state-dict key sets of torchvision
//! and timm networks (names and shapes exported by `testdata/torch/make_fixtures.py`).

use std::collections::{BTreeMap, HashMap};

use candle_core::{DType, Device, Tensor};
use fmv_models::{Arch, Backbone, Checkpoint, Entry, LayerRef, LoadOptions, Model};

use crate::testdata;

fn headers() -> BTreeMap<String, BTreeMap<String, Vec<usize>>> {
    let text = std::fs::read_to_string(testdata().join("torch/headers.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A checkpoint header as `Checkpoint::entries` would give it for a torchvision-named file.
fn entries(keys: &BTreeMap<String, Vec<usize>>) -> BTreeMap<String, Entry> {
    keys.iter()
        .map(|(k, s)| {
            (
                k.clone(),
                Entry {
                    file_key: k.clone(),
                    shape: s.clone(),
                    dtype: if k.ends_with("num_batches_tracked") {
                        DType::I64
                    } else {
                        DType::F32
                    },
                },
            )
        })
        .collect()
}

#[track_caller]
fn check_infers(header: &str, name: &str) -> Arch {
    let all = headers();
    let keys = &all[header];
    let arch = Arch::infer(&entries(keys)).unwrap_or_else(|| panic!("{header}: not recognised"));
    assert_eq!(arch.name(), name, "{header}");
    // Every key of the real network is expected, with its real shape, and nothing else.
    let expected: BTreeMap<String, Vec<usize>> = arch.expected_tensors().into_iter().collect();
    let real: BTreeMap<String, Vec<usize>> = keys
        .iter()
        .filter(|(k, _)| !k.ends_with("num_batches_tracked"))
        .map(|(k, s)| (k.clone(), s.clone()))
        .collect();
    assert_eq!(
        expected, real,
        "{header}: expected tensors differ from torchvision's"
    );
    arch
}

#[test]
fn infers_every_torchvision_resnet() {
    for (h, n) in [
        ("resnet18", "resnet18"),
        ("resnet34", "resnet34"),
        ("resnet50", "resnet50"),
        ("resnet101", "resnet101"),
        ("resnet152", "resnet152"),
    ] {
        let arch = check_infers(h, n);
        assert!(
            !arch.description().contains("widths"),
            "{h} is standard width: {}",
            arch.description()
        );
    }
}

#[test]
fn infers_wide_and_grouped_resnets_with_their_widths() {
    let wide = check_infers("wide_resnet50_2", "resnet50");
    assert!(
        wide.description().contains("inner 128/256/512/1024"),
        "{}",
        wide.description()
    );
    let next = check_infers("resnext50_32x4d", "resnet50");
    assert!(
        next.description().contains("32 groups"),
        "{}",
        next.description()
    );
}

#[test]
fn infers_every_torchvision_vgg() {
    for n in [
        "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
    ] {
        check_infers(n, n);
    }
}

#[test]
fn timm_checkpoints_are_recognised() {
    check_infers("timm_resnet50", "resnet50");
    // timm's VGG names its classifier differently; the checkpoint maps it to torchvision's.
    let all = headers();
    let tensors: HashMap<String, Tensor> = all["timm_vgg16"]
        .iter()
        .map(|(k, s)| {
            (
                k.clone(),
                Tensor::zeros(s.as_slice(), DType::F32, &Device::Cpu).unwrap(),
            )
        })
        .collect();
    let ck = Checkpoint::from_tensors("timm_vgg16", tensors).unwrap();
    assert_eq!(ck.scheme().as_str(), "timm");
    assert_eq!(ck.shape("classifier.0.weight"), Some(&[4096, 25088][..]));
    assert_eq!(
        ck.entries()["classifier.0.weight"].file_key,
        "pre_logits.fc1.weight"
    );
    let arch = Arch::infer(ck.entries()).unwrap();
    assert_eq!(arch.name(), "vgg16");
    let expected: BTreeMap<String, Vec<usize>> = arch.expected_tensors().into_iter().collect();
    let got: BTreeMap<String, Vec<usize>> = ck
        .entries()
        .iter()
        .map(|(k, e)| (k.clone(), e.shape.clone()))
        .collect();
    assert_eq!(expected, got);
}

#[test]
fn a_full_size_resnet18_builds_and_lists_its_taps() {
    let all = headers();
    let tensors: HashMap<String, Tensor> = all["resnet18"]
        .iter()
        .map(|(k, s)| {
            let dtype = if k.ends_with("num_batches_tracked") {
                DType::I64
            } else {
                DType::F32
            };
            // BatchNorm variances of 1 keep the folded weights finite.
            let t = if k.ends_with("running_var") {
                Tensor::ones(s.as_slice(), dtype, &Device::Cpu)
            } else {
                Tensor::zeros(s.as_slice(), dtype, &Device::Cpu)
            };
            (k.clone(), t.unwrap())
        })
        .collect();
    let ck = Checkpoint::from_tensors("resnet18", tensors).unwrap();
    let model = Model::from_checkpoint(ck, &LoadOptions::new().with_arch("resnet18")).unwrap();
    let names: Vec<&str> = model.layers().iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names[..4], ["conv1", "maxpool", "layer1.0", "layer1.1"]);
    assert_eq!(names[names.len() - 2..], ["avgpool", "logits"]);
    let l = model.resolve(&LayerRef::Compat(-2)).unwrap();
    assert_eq!(model.layer(l).name, "layer4.0");
    assert_eq!(model.layer(l).channels, 512);
    let sizes = model.spatial_sizes(224, 224);
    assert_eq!(sizes[l.0], Some((7, 7)));
}
