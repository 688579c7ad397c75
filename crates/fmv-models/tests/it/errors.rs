//! Every loading and addressing error names the culprit and the fix.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use fmv_models::{Backbone, Checkpoint, LayerRef, LoadOptions, Model, parse_device};

use crate::{reference_weights, tensors_of, testdata};

fn resnet_tensors() -> HashMap<String, Tensor> {
    tensors_of(&reference_weights("resnet50_small_seed1"))
}

#[track_caller]
fn load_err(tensors: HashMap<String, Tensor>, opts: &LoadOptions) -> String {
    let ck = Checkpoint::from_tensors("edited.safetensors", tensors).unwrap();
    Model::from_checkpoint(ck, opts).unwrap_err().to_string()
}

/// The error of loading `tensors` and asking for `logits` (a head's problems wait for them).
#[track_caller]
fn logits_err(tensors: HashMap<String, Tensor>, opts: &LoadOptions) -> String {
    let ck = Checkpoint::from_tensors("edited.safetensors", tensors).unwrap();
    match Model::from_checkpoint(ck, opts) {
        Ok(m) => m
            .resolve(&LayerRef::Name("logits".into()))
            .unwrap_err()
            .to_string(),
        Err(e) => e.to_string(),
    }
}

/// Whether `key` is a tensor of a ResNet's or VGG's head.
fn in_head(key: &str) -> bool {
    key.starts_with("fc.") || key.starts_with("classifier.")
}

#[test]
fn a_missing_tensor_is_named_with_its_expected_shape() {
    let mut t = resnet_tensors();
    t.remove("layer2.0.bn1.running_var");
    let msg = load_err(t, &LoadOptions::new());
    assert!(msg.contains("missing 1 tensor"), "{msg}");
    assert!(msg.contains("`layer2.0.bn1.running_var` [16]"), "{msg}");
    assert!(msg.contains("torchvision"), "{msg}");
}

#[test]
fn an_unexpected_tensor_is_named() {
    let mut t = resnet_tensors();
    t.insert(
        "head.extra.weight".into(),
        Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap(),
    );
    let msg = load_err(t, &LoadOptions::new());
    assert!(msg.contains("unexpected tensor"), "{msg}");
    assert!(msg.contains("`head.extra.weight` [2, 3]"), "{msg}");
}

#[test]
fn a_misshaped_tensor_names_both_shapes() {
    let mut t = resnet_tensors();
    t.insert(
        "layer1.0.bn1.bias".into(),
        Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
    );
    let msg = load_err(t, &LoadOptions::new());
    assert!(
        msg.contains("`layer1.0.bn1.bias` has shape [3], expected [8]"),
        "{msg}"
    );
}

/// A head whose shapes do not chain loads (every feature map works) and `logits` name both
/// shapes.
#[test]
fn a_misshaped_head_tensor_is_named_when_logits_are_asked() {
    let mut t = resnet_tensors();
    let c = t["fc.weight"].dims()[1];
    t.insert(
        "fc.bias".into(),
        Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
    );
    let msg = logits_err(t.clone(), &LoadOptions::new());
    assert!(
        msg.contains(&format!(
            "`fc.bias` has shape [3], and `fc.weight` [2, {c}] needs [2]"
        )),
        "{msg}"
    );
    let ck = Checkpoint::from_tensors("edited.safetensors", t).unwrap();
    let model = Model::from_checkpoint(ck, &LoadOptions::new()).unwrap();
    assert!(model.resolve(&LayerRef::Name("avgpool".into())).is_ok());
    assert!(!model.layers().iter().any(|l| l.name == "logits"));
}

#[test]
fn nan_and_inf_weights_are_refused_by_name() {
    for (bad, word) in [(f32::NAN, "NaN"), (f32::INFINITY, "inf")] {
        let mut t = resnet_tensors();
        let w = &t["layer3.1.conv2.weight"];
        let mut v: Vec<f32> = w.flatten_all().unwrap().to_vec1().unwrap();
        v[7] = bad;
        let edited = Tensor::from_vec(v, w.dims(), &Device::Cpu).unwrap();
        t.insert("layer3.1.conv2.weight".into(), edited);
        let msg = load_err(t, &LoadOptions::new());
        assert!(
            msg.contains(&format!("`layer3.1.conv2.weight` contains 1 {word} value")),
            "{msg}"
        );
    }
}

/// A running variance below −ε makes BatchNorm take the square root of a negative number
/// (PyTorch computes NaN there, which ReLU would then hide as 0 in fmv): refused by name. Just
/// above −ε the layer is finite, as in PyTorch, and loads.
#[test]
fn a_negative_batch_norm_variance_is_refused_by_name() {
    let with_var = |value: f32| {
        let mut t = resnet_tensors();
        let key = "layer2.0.bn1.running_var";
        let mut v: Vec<f32> = t[key].to_vec1().unwrap();
        v[5] = value;
        t.insert(key.into(), Tensor::new(v, &Device::Cpu).unwrap());
        t
    };
    let msg = load_err(with_var(-1.0), &LoadOptions::new());
    assert!(
        msg.contains("tensor `layer2.0.bn1.running_var` holds a variance of -1 at channel 5"),
        "{msg}"
    );
    let ck = Checkpoint::from_tensors("edited.safetensors", with_var(-0.5e-5)).unwrap();
    assert!(Model::from_checkpoint(ck, &LoadOptions::new()).is_ok());
}

#[test]
fn a_wrong_explicit_arch_is_refused() {
    let msg = load_err(resnet_tensors(), &LoadOptions::new().with_arch("vgg16"));
    assert!(msg.contains("holds a resnet50, not a vgg16"), "{msg}");
    let msg = load_err(resnet_tensors(), &LoadOptions::new().with_arch("resnet51"));
    assert!(msg.contains("unknown architecture `resnet51`"), "{msg}");
    assert!(msg.contains("resnet50"), "{msg}");
    // The right name is accepted even though the widths are narrow.
    let ck = Checkpoint::from_tensors("ok", resnet_tensors()).unwrap();
    Model::from_checkpoint(ck, &LoadOptions::new().with_arch("resnet50")).unwrap();
}

#[test]
fn tensors_of_another_network_are_not_guessed() {
    let mut t = HashMap::new();
    t.insert(
        "encoder.block.0.weight".to_string(),
        Tensor::zeros((4, 4), DType::F32, &Device::Cpu).unwrap(),
    );
    let msg = load_err(t, &LoadOptions::new());
    assert!(
        msg.contains("do not form a torchvision/timm ResNet or VGG"),
        "{msg}"
    );
    assert!(msg.contains("`encoder.block.0.weight`"), "{msg}");
}

#[test]
fn unreadable_files_say_what_fmv_reads() {
    let dir = std::env::temp_dir().join(format!("fmv-models-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = dir.join("notes.safetensors");
    std::fs::write(&text, "hello, these are not weights").unwrap();
    let msg = Model::load(&text, &LoadOptions::new())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("notes.safetensors") && msg.contains("safetensors"),
        "{msg}"
    );
    let empty = dir.join("empty.pth");
    std::fs::write(&empty, "").unwrap();
    let msg = Model::load(&empty, &LoadOptions::new())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("empty"), "{msg}");
    let bytes = std::fs::read(reference_weights("vgg16_small_seed1")).unwrap();
    let cut = dir.join("truncated.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let msg = Model::load(&cut, &LoadOptions::new())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("truncated.safetensors"), "{msg}");
    let missing = dir.join("absent.safetensors");
    let msg = Model::load(&missing, &LoadOptions::new())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("cannot read weights file") && msg.contains("absent.safetensors"),
        "{msg}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn unknown_layers_list_the_valid_names() {
    let model = Model::load(reference_weights("vgg16_small_seed1"), &LoadOptions::new()).unwrap();
    let msg = model
        .resolve(&LayerRef::Name("features.29".into()))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("unknown layer `features.29`"), "{msg}");
    assert!(
        msg.contains("features.28, features.30, avgpool, logits"),
        "{msg}"
    );
    let msg = model
        .resolve(&LayerRef::Compat(13))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("13 convolutions (valid: -13..=12"), "{msg}");
    assert_eq!(
        model
            .layer(model.resolve(&LayerRef::Compat(-1)).unwrap())
            .name,
        "features.28"
    );
    assert_eq!(
        model
            .layer(model.resolve(&LayerRef::Compat(7)).unwrap())
            .name,
        "features.17"
    );
}

#[test]
fn compat_integers_follow_python_indexing_on_resnet() {
    let model = Model::load(
        reference_weights("resnet50_small_seed1"),
        &LoadOptions::new(),
    )
    .unwrap();
    let name = |i| {
        model
            .layer(model.resolve(&LayerRef::Compat(i)).unwrap())
            .name
            .clone()
    };
    assert_eq!(name(-2), "layer4.1");
    assert_eq!(name(0), "layer4.0");
    assert_eq!(name(-1), "layer4.2");
    assert_eq!(name(2), "layer4.2");
    let msg = model
        .resolve(&LayerRef::Compat(-4))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("3 blocks in its last stage (valid: -3..=2"),
        "{msg}"
    );
}

#[test]
fn inputs_the_network_cannot_take_are_refused() {
    let model = Model::load(reference_weights("vgg16_small_seed1"), &LoadOptions::new()).unwrap();
    let last = model
        .resolve(&LayerRef::Name("features.30".into()))
        .unwrap();
    let tiny = Tensor::zeros((1, 3, 16, 16), DType::F32, &Device::Cpu).unwrap();
    let msg = model.forward_taps(&tiny, &[last]).unwrap_err().to_string();
    assert!(msg.contains("needs at least 32×32 pixels"), "{msg}");
    // The same input is fine for an earlier tap.
    let early = model.resolve(&LayerRef::Name("features.5".into())).unwrap();
    model.forward_taps(&tiny, &[early]).unwrap();
    let grey = Tensor::zeros((1, 1, 64, 64), DType::F32, &Device::Cpu).unwrap();
    let msg = model.forward_taps(&grey, &[early]).unwrap_err().to_string();
    assert!(msg.contains("expected 3 colour channels, got 1"), "{msg}");
}

#[test]
fn devices_this_build_lacks_say_how_to_get_them() {
    assert!(matches!(parse_device("cpu"), Ok(Device::Cpu)));
    if !cfg!(feature = "cuda") {
        let msg = parse_device("cuda:1").unwrap_err().to_string();
        assert!(
            msg.contains("built without CUDA") && msg.contains("--features cuda"),
            "{msg}"
        );
    }
    let msg = parse_device("tpu").unwrap_err().to_string();
    assert!(
        msg.contains("expected `cpu`, `cuda`, `cuda:N` or `metal`"),
        "{msg}"
    );
    let _ = testdata();
}

#[test]
fn the_classifier_is_read_only_when_logits_are_asked_for() {
    // A corrupt classifier does not stop a pass that ends at a feature map...
    let mut t = tensors_of(&reference_weights("vgg16_small_seed1"));
    let w = &t["classifier.6.weight"];
    let nan = Tensor::full(f32::NAN, w.dims(), &Device::Cpu).unwrap();
    t.insert("classifier.6.weight".into(), nan);
    let ck = Checkpoint::from_tensors("nan-head.safetensors", t).unwrap();
    let model = Model::from_checkpoint(ck, &LoadOptions::new()).unwrap();
    let x = Tensor::zeros((1, 3, 224, 224), DType::F32, &Device::Cpu).unwrap();
    let f28 = model.resolve(&LayerRef::Compat(12)).unwrap();
    model.forward_taps(&x, &[f28]).unwrap();
    // ...and is reported, by name, once the logits need it.
    let logits = model.resolve(&LayerRef::Name("logits".into())).unwrap();
    let msg = model.forward_taps(&x, &[logits]).unwrap_err().to_string();
    assert!(
        msg.contains("`classifier.6.weight` contains 192 NaN value"),
        "{msg}"
    );
}

/// Any one tensor of a ResNet and of a VGG replaced by a scalar, an empty vector or a
/// one-element vector: a named error every time, never a panic (a scalar `layer1.0.conv1.weight`
/// once indexed out of bounds while the architecture was being inferred).
#[test]
fn any_tensor_of_the_wrong_rank_is_an_error_not_a_panic() {
    let scalar = Tensor::new(1f32, &Device::Cpu).unwrap();
    let empty = Tensor::zeros(0, DType::F32, &Device::Cpu).unwrap();
    let one = Tensor::zeros(1, DType::F32, &Device::Cpu).unwrap();
    for file in [
        reference_weights("resnet50_small_seed1"),
        testdata().join("torch/narrow_vgg11_bn.safetensors"),
    ] {
        let original = tensors_of(&file);
        for key in original.keys() {
            for bad in [&scalar, &empty, &one] {
                let mut t = original.clone();
                t.insert(key.clone(), bad.clone());
                let ck = Checkpoint::from_tensors("edited.safetensors", t).unwrap();
                // A head's problems are errors when `logits` are asked for.
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let logits = LayerRef::Name("logits".into());
                    match Model::from_checkpoint(ck, &LoadOptions::new()) {
                        Ok(m) => m.resolve(&logits).map(|_| ()).map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    }
                }));
                let Ok(loaded) = result else {
                    panic!("{key} as {:?} panicked", bad.dims());
                };
                // `num_batches_tracked` is not read: any shape is accepted there.
                if !key.ends_with("num_batches_tracked") {
                    let msg = loaded.unwrap_err();
                    assert!(!msg.is_empty(), "{key}");
                }
            }
        }
    }
}

/// A layer of zero channels, or a head of zero classes, is refused naming the tensor (the
/// kernels once panicked on the empty maps).
#[test]
fn a_network_with_zero_channels_or_classes_is_refused() {
    let zeros = |shape: &[usize]| Tensor::zeros(shape, DType::F32, &Device::Cpu).unwrap();
    let mut vgg = HashMap::new();
    vgg.insert("features.0.weight".to_string(), zeros(&[0, 3, 3, 3]));
    vgg.insert("features.0.bias".to_string(), zeros(&[0]));
    let msg = load_err(vgg, &LoadOptions::new());
    assert!(
        msg.contains("tensor `features.0.weight`") && msg.contains("dimension of 0"),
        "{msg}"
    );
    let mut resnet = resnet_tensors();
    let c = resnet["fc.weight"].dims()[1];
    resnet.insert("fc.weight".into(), zeros(&[0, c]));
    resnet.insert("fc.bias".into(), zeros(&[0]));
    let msg = load_err(resnet, &LoadOptions::new());
    assert!(
        msg.contains("tensor `fc.weight`") && msg.contains("dimension of 0"),
        "{msg}"
    );
}

/// A ResNet with one tensor missing is still recognised as the ResNet it is, and the missing
/// tensor is named with its shape, whichever tensor it is (it was "the tensors do not form a
/// torchvision/timm ResNet or VGG" for `layer4.0.conv2.weight`, with or without `--arch`). In
/// the head, `fc.weight` is named when `logits` are asked for; without `fc.bias` the head is a
/// Linear without bias (torch's `bias=False`), which is a valid head.
#[test]
fn a_resnet_missing_any_one_tensor_names_it() {
    let original = resnet_tensors();
    let full = Model::from_checkpoint(
        Checkpoint::from_tensors("full", original.clone()).unwrap(),
        &LoadOptions::new(),
    )
    .unwrap();
    let arch = full.arch_name();
    for key in original
        .keys()
        .filter(|k| !k.ends_with("num_batches_tracked"))
    {
        let mut t = original.clone();
        t.remove(key);
        for opts in [
            LoadOptions::new(),
            LoadOptions::new().with_arch(arch.clone()),
        ] {
            if key == "fc.bias" {
                let ck = Checkpoint::from_tensors("edited.safetensors", t.clone()).unwrap();
                let model = Model::from_checkpoint(ck, &opts).unwrap();
                assert!(model.arch().description().contains("2 classes"));
                continue;
            }
            if in_head(key) {
                let msg = logits_err(t.clone(), &opts);
                assert!(msg.contains("`fc.bias` has no `fc.weight`"), "{key}: {msg}");
                continue;
            }
            let msg = load_err(t.clone(), &opts);
            assert!(
                msg.contains(&format!("missing 1 tensor(s) for {arch}"))
                    && msg.contains(&format!("`{key}`")),
                "{key}: {msg}"
            );
        }
    }
}

/// A VGG with one backbone tensor missing (a convolution's weight or bias, a BatchNorm's
/// statistic) is still the VGG it is, and the tensor is named (a missing weight once made the
/// file "not a ResNet or VGG").
#[test]
fn a_vgg_missing_any_one_tensor_names_it() {
    let original = tensors_of(&testdata().join("torch/narrow_vgg11_bn.safetensors"));
    for key in original
        .keys()
        .filter(|k| k.starts_with("features.") && !k.ends_with("num_batches_tracked"))
    {
        let mut t = original.clone();
        t.remove(key);
        for opts in [LoadOptions::new(), LoadOptions::new().with_arch("vgg11_bn")] {
            let msg = load_err(t.clone(), &opts);
            assert!(
                msg.contains("missing 1 tensor(s) for vgg11_bn")
                    && msg.contains(&format!("`{key}`")),
                "{key}: {msg}"
            );
        }
    }
}

/// A whole block or convolution missing changes the depth the file shows; asking for the
/// depth names every missing tensor instead of refusing the architecture.
#[test]
fn an_asked_depth_names_whole_missing_blocks() {
    let mut resnet = tensors_of(&testdata().join("torch/narrow_resnet18.safetensors"));
    resnet.retain(|k, _| !k.starts_with("layer3.1."));
    let msg = load_err(resnet.clone(), &LoadOptions::new().with_arch("resnet18"));
    assert!(
        msg.contains("missing 10 tensor(s) for resnet18")
            && msg.contains("`layer3.1.conv1.weight`"),
        "{msg}"
    );
    // Without the depth, the file is a ResNet of another block layout.
    let ck = Checkpoint::from_tensors("edited.safetensors", resnet).unwrap();
    let model = Model::from_checkpoint(ck, &LoadOptions::new()).unwrap();
    assert_eq!(model.arch_name(), "resnet-custom");

    let mut vgg = tensors_of(&testdata().join("torch/narrow_vgg11_bn.safetensors"));
    vgg.retain(|k, _| !k.starts_with("features.11.") && !k.starts_with("features.12."));
    let msg = load_err(vgg, &LoadOptions::new().with_arch("vgg11_bn"));
    assert!(
        msg.contains("missing 6 tensor(s) for vgg11_bn") && msg.contains("`features.11.weight`"),
        "{msg}"
    );
}
