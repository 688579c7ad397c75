//! PyTorch zip checkpoints written by `torch.save` (see `testdata/torch/make_fixtures.py`).

use fmv_models::{Backbone, LayerRef, LoadOptions, Model};

use crate::{means, reference_weights, test_input, testdata};

#[test]
fn a_pth_state_dict_gives_the_same_numbers_as_safetensors() {
    let st = Model::load(
        reference_weights("resnet50_small_seed1"),
        &LoadOptions::new(),
    )
    .unwrap();
    let pth = Model::load(
        testdata().join("torch/resnet50_small_seed1.pth"),
        &LoadOptions::new(),
    )
    .unwrap();
    assert_eq!(pth.arch(), st.arch());
    let x = test_input(2, 224, 224);
    for layer in ["layer4.1", "logits"] {
        let l = st.resolve(&LayerRef::Name(layer.into())).unwrap();
        let a = means(&st.forward_taps(&x, &[l]).unwrap()[0]);
        let b = means(&pth.forward_taps(&x, &[l]).unwrap()[0]);
        assert_eq!(a, b, "{layer}");
    }
}

#[test]
fn a_wrapped_dataparallel_headless_pth_loads() {
    // {"state_dict": {"module.features.0.weight": ...}, "epoch": 3}, features only.
    let pth = Model::load(
        testdata().join("torch/vgg_features_wrapped.pth"),
        &LoadOptions::new(),
    )
    .unwrap();
    let st = Model::load(
        testdata().join("torch/narrow_vgg11_bn.safetensors"),
        &LoadOptions::new(),
    )
    .unwrap();
    assert_eq!(pth.arch_name(), "vgg11_bn");
    assert!(
        pth.layers().iter().all(|l| l.name != "logits"),
        "a headless checkpoint has no logits tap"
    );
    let x = test_input(1, 224, 224);
    let l = st.resolve(&LayerRef::Compat(-1)).unwrap();
    assert_eq!(
        means(&pth.forward_taps(&x, &[l]).unwrap()[0]),
        means(&st.forward_taps(&x, &[l]).unwrap()[0])
    );
}
