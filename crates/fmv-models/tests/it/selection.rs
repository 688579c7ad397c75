//! Selecting channels of a tap ([`Pass::selecting`]): the value returned is the whole tap's
//! channels, bit for bit, and so is the input gradient of an objective on them, whether the
//! network computes only those channels (VGG's convolutions and pools as the last tap) or
//! selects them from the whole tap (everything else).

use candle_core::{DType, IndexOp, Tensor, Var};
use fmv_models::{Backbone, LayerId, LayerRef, LoadOptions, Model, Pass, Tile};

use crate::{reference_weights, test_input};

fn load(name: &str) -> Model {
    Model::load(reference_weights(name), &LoadOptions::new()).unwrap()
}

fn id(m: &Model, name: &str) -> LayerId {
    m.resolve(&LayerRef::Name(name.into())).unwrap()
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

/// Channels `kept` of `t` along dimension 1.
fn channels(t: &Tensor, kept: &[usize]) -> Tensor {
    let ids: Vec<u32> = kept.iter().map(|&c| c as u32).collect();
    t.index_select(&Tensor::new(ids.as_slice(), t.device()).unwrap(), 1)
        .unwrap()
}

/// The taps of each reference network checked: convolutions at several sizes, pools, the
/// adaptive pool and the logits (VGG computes the selected channels of its convolutions and
/// pools alone; ResNet's blocks select them from the whole tap).
const TAPS: [(&str, &[&str]); 2] = [
    (
        "vgg16_small_seed1",
        &[
            "features.0",
            "features.4",
            "features.16",
            "features.21",
            "features.28",
            "features.30",
            "avgpool",
            "logits",
        ],
    ),
    (
        "resnet50_small_seed1",
        &["maxpool", "layer1.0", "layer4", "avgpool", "logits"],
    ),
];

/// Three channels out of order: the last, the first and a middle one.
fn some_channels(c: usize) -> Vec<usize> {
    vec![c - 1, 0, c / 2]
}

#[test]
fn a_selected_tap_is_the_whole_taps_channels_bit_for_bit() {
    for (name, taps) in TAPS {
        let m = load(name);
        let x = test_input(2, 96, 80);
        for &tap in taps {
            let t = id(&m, tap);
            let whole = m.forward_taps(&x, &[t]).unwrap().remove(0);
            let kept = some_channels(whole.dim(1).unwrap());
            let pass = Pass::from_input().selecting(t, kept.clone());
            let got = m.forward_pass(&x, &pass, &[t]).unwrap().remove(0);
            assert_eq!(got.dims()[1], kept.len(), "{name} {tap}");
            assert_eq!(
                bits(&got),
                bits(&channels(&whole, &kept)),
                "{name} {tap} {kept:?}"
            );
        }
    }
}

/// A selected tap that is not the last one asked for is selected in what is returned only:
/// the layers after it see all its channels.
#[test]
fn the_layers_after_a_selected_tap_see_all_of_it() {
    let m = load("vgg16_small_seed1");
    let x = test_input(1, 64, 64);
    let (f16, f28) = (id(&m, "features.16"), id(&m, "features.28"));
    let whole = m.forward_taps(&x, &[f16, f28]).unwrap();
    let pass = Pass::from_input().selecting(f16, vec![3, 1]);
    let got = m.forward_pass(&x, &pass, &[f16, f28]).unwrap();
    assert_eq!(bits(&got[0]), bits(&channels(&whole[0], &[3, 1])));
    assert_eq!(bits(&got[1]), bits(&whole[1]));
}

/// Zeroing and selecting the same tap: the selected channels of the zeroed tap, on the path
/// that computes the selection alone (VGG's last tap) and on the one that selects it.
#[test]
fn a_selected_tap_that_is_zeroed_too_is_the_zeroed_taps_channels() {
    for (name, tap) in [
        ("vgg16_small_seed1", "features.28"),
        ("resnet50_small_seed1", "layer4"),
    ] {
        let m = load(name);
        let x = test_input(2, 64, 64);
        let t = id(&m, tap);
        let zeroed = Pass::from_input().zeroing(t, vec![0, 5]);
        let whole = m.forward_pass(&x, &zeroed, &[t]).unwrap().remove(0);
        let kept = vec![5, 1, 0];
        let pass = zeroed.clone().selecting(t, kept.clone());
        let got = m.forward_pass(&x, &pass, &[t]).unwrap().remove(0);
        assert_eq!(bits(&got), bits(&channels(&whole, &kept)), "{name}");
        let means = got.mean((2, 3)).unwrap().to_vec2::<f32>().unwrap();
        assert!(
            means
                .iter()
                .all(|r| r[0] == 0.0 && r[1] != 0.0 && r[2] == 0.0),
            "{name}: {means:?}"
        );
    }
}

/// The gradient reaching a tracked input from each image's own channel of the tap, as the
/// patterns take it: the same bits with the whole tap and with only those channels, for both
/// Winograd tiles a tracked input may take.
#[test]
fn the_input_gradient_of_selected_channels_is_the_whole_taps() {
    for (name, tap, filters) in [
        ("vgg16_small_seed1", "features.28", [7usize, 2]),
        ("vgg16_small_seed1", "features.21", [0, 0]),
        ("vgg16_small_seed1", "features.23", [9, 4]),
        ("resnet50_small_seed1", "layer4", [1, 6]),
    ] {
        let m = load(name);
        let t = id(&m, tap);
        for tile in [Tile::F2, Tile::F4] {
            let gradient = |select: bool| {
                let x = Var::from_tensor(&test_input(2, 96, 80)).unwrap();
                let mut pass = Pass::from_input().with_tracked_tile(tile);
                let mut at = filters;
                if select {
                    let kept = if filters[0] == filters[1] {
                        vec![filters[0]]
                    } else {
                        filters.to_vec()
                    };
                    at = [0, kept.len() - 1];
                    pass = pass.selecting(t, kept);
                }
                let y = m
                    .forward_pass(x.as_tensor(), &pass, &[t])
                    .unwrap()
                    .remove(0);
                let objective = (y.i((0, at[0])).unwrap().mean_all().unwrap()
                    + y.i((1, at[1])).unwrap().mean_all().unwrap())
                .unwrap();
                let grads = objective.backward().unwrap();
                (
                    bits(&objective),
                    bits(grads.get(x.as_tensor()).expect("a gradient")),
                )
            };
            let (whole, selected) = (gradient(false), gradient(true));
            assert_eq!(whole.0, selected.0, "{name} {tap} {tile:?}: objective");
            assert!(
                whole.1.iter().any(|&b| f32::from_bits(b) != 0.0),
                "{name} {tap}: no gradient"
            );
            assert_eq!(whole.1, selected.1, "{name} {tap} {tile:?}: gradient");
        }
    }
}

#[test]
fn a_bad_selection_is_an_error_that_names_the_layer() {
    let m = load("vgg16_small_seed1");
    let x = test_input(1, 64, 64);
    let f28 = id(&m, "features.28");
    let err = |pass: Pass| match m.forward_pass(&x, &pass, &[f28]) {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    };
    let e = err(Pass::from_input().selecting(f28, vec![3, 64]));
    assert!(
        e.contains("cannot select channel 64 of `features.28`, which has 64 channels (0..=63)"),
        "{e}"
    );
    let e = err(Pass::from_input().selecting(f28, Vec::new()));
    assert!(e.contains("no channel of `features.28` selected"), "{e}");
}
