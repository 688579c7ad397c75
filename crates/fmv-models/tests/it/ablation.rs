//! Zeroing feature maps during a forward pass ([`Pass::zeroing`]) against PyTorch's forward
//! hook on the two small reference networks (`testdata/torch/make_ablation.py`), and passes
//! resumed from a tap against whole passes.

use fmv_models::{Backbone, LayerRef, LoadOptions, Model, Pass};
use serde_json::Value;

use crate::torch_parity::rel_err;
use crate::{means, reference_weights, test_input, testdata};

fn golden() -> Value {
    let text = std::fs::read_to_string(testdata().join("torch/ablation.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn load(name: &str) -> Model {
    Model::load(reference_weights(name), &LoadOptions::new()).unwrap()
}

fn id(m: &Model, name: &str) -> fmv_models::LayerId {
    m.resolve(&LayerRef::Name(name.into())).unwrap()
}

#[test]
fn zeroed_maps_give_torchs_logits_on_both_reference_networks() {
    let golden = golden();
    for (name, net) in golden["forward"].as_object().unwrap() {
        let m = load(name);
        let dims: Vec<usize> = serde_json::from_value(net["input"].clone()).unwrap();
        let x = test_input(dims[0], dims[1], dims[2]);
        let logits = id(&m, "logits");
        let plain: Vec<Vec<f32>> = serde_json::from_value(net["logits"].clone()).unwrap();
        let cases = net["cases"].as_array().unwrap();
        assert!(cases.len() >= 18, "{name}: {} cases", cases.len());
        for case in cases {
            let tap = id(&m, case["tap"].as_str().unwrap());
            let channels: Vec<usize> = serde_json::from_value(case["channels"].clone()).unwrap();
            let want: Vec<Vec<f32>> = serde_json::from_value(case["logits"].clone()).unwrap();
            let pass = Pass::from_input().zeroing(tap, channels.clone());
            let got = means(&m.forward_pass(&x, &pass, &[logits]).unwrap()[0]);
            let err = rel_err(&got, &want);
            assert!(err <= 1e-4, "{name} {case:.40}: relative error {err:e}");
            // The zeroing changes torch's logits: the test could fail.
            assert!(
                rel_err(&plain, &want) > 1e-4,
                "{name}: {} {channels:?} changes nothing",
                case["tap"]
            );
        }
    }
}

#[test]
fn a_pass_resumed_from_a_tap_equals_the_whole_pass() {
    for (name, taps) in [
        (
            "resnet50_small_seed1",
            ["maxpool", "layer2.3", "layer4", "avgpool"],
        ),
        (
            "vgg16_small_seed1",
            ["features.0", "features.16", "features.28", "avgpool"],
        ),
    ] {
        let m = load(name);
        let x = test_input(2, 96, 80);
        let logits = id(&m, "logits");
        for tap in taps {
            let t = id(&m, tap);
            let whole = m
                .forward_pass(&x, &Pass::from_input().zeroing(t, vec![1, 3]), &[logits])
                .unwrap();
            let value = m.forward_taps(&x, &[t]).unwrap().remove(0);
            let resumed = m
                .forward_pass(
                    &value,
                    &Pass::from_tap(t).zeroing(t, vec![1, 3]),
                    &[t, logits],
                )
                .unwrap();
            assert_eq!(means(&whole[0]), means(&resumed[1]), "{name} from {tap}");
            // The tap's own value, asked for, is the zeroed one.
            let zeroed = means(&resumed[0]);
            assert!(
                zeroed.iter().all(|r| r[1] == 0.0 && r[3] == 0.0),
                "{name} {tap}"
            );
        }
    }
}

#[test]
fn bad_passes_are_errors_that_say_why() {
    let m = load("vgg16_small_seed1");
    let x = test_input(1, 64, 64);
    let (f28, f17, logits) = (
        id(&m, "features.28"),
        id(&m, "features.17"),
        id(&m, "logits"),
    );
    let err = |pass: &Pass, x: &fmv_models::Tensor, taps: &[fmv_models::LayerId]| match m
        .forward_pass(x, pass, taps)
    {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    };
    let e = err(&Pass::from_input().zeroing(f28, vec![64]), &x, &[logits]);
    assert!(
        e.contains("channel 64 of `features.28`, which has 64 channels"),
        "{e}"
    );
    let value = m.forward_taps(&x, &[f28]).unwrap().remove(0);
    let e = err(&Pass::from_tap(f28), &value, &[f17]);
    assert!(
        e.contains("`features.17` comes before `features.28`"),
        "{e}"
    );
    let e = err(
        &Pass::from_tap(f28).zeroing(f17, vec![0]),
        &value,
        &[logits],
    );
    assert!(e.contains("`features.17` comes before"), "{e}");
    let e = err(&Pass::from_tap(id(&m, "features.0")), &value, &[logits]);
    assert!(
        e.contains("starts from its value, N×C×h×w with 8 channels"),
        "{e}"
    );
    let e = err(&Pass::from_tap(f28), &x, &[logits]);
    assert!(e.contains("64 channels"), "{e}");
}
