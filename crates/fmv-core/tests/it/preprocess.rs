//! Preprocessing parity: every dsA image's input tensor must match the original's bit for bit
//! (sha256 of the f32 little-endian CHW bytes), JPEGs included.

use fmv_core::Preprocess;
use sha2::{Digest, Sha256};

use crate::golden::{Golden, root};

#[test]
fn original_preset_matches_pillow_bit_for_bit_on_all_dsa_images() {
    let golden = Golden::load("resnet50_small_seed1");
    let p = Preprocess::original();
    let mut checked = 0;
    for (rel, entry) in golden.images() {
        let x = p.load(&root().join(&rel)).unwrap();
        let mut h = Sha256::new();
        for v in &x {
            h.update(v.to_le_bytes());
        }
        let got = format!("{:x}", h.finalize());
        let want = entry["preprocess"]["sha256_f32le"].as_str().unwrap();
        assert_eq!(
            got, want,
            "preprocessed tensor of {rel} differs from the original's"
        );
        let sums = entry["preprocess"]["channel_sums_f64"].as_array().unwrap();
        for c in 0..3 {
            let s: f64 = x[c * 224 * 224..(c + 1) * 224 * 224]
                .iter()
                .map(|&v| v as f64)
                .sum();
            assert!(
                (s - sums[c].as_f64().unwrap()).abs() <= 1e-6,
                "{rel} channel {c}"
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 32);
}

/// torchvision's eval transform (and timm's, bicubic with `crop_pct`), with fmv's settings for
/// each configuration of `testdata/torch/transforms.json`: the cropped 8-bit image and the
/// input tensor equal torchvision's bit for bit on every reference and format image (upscaled,
/// downscaled, padded where smaller than the crop, odd offsets rounded half to even).
#[test]
fn torchvision_preset_matches_torchvisions_eval_transform_bit_for_bit() {
    use fmv_core::pixels::{Interpolation, load_rgb8};
    let testdata = root().join("..");
    let text = std::fs::read_to_string(testdata.join("torch/transforms.json")).unwrap();
    let golden: serde_json::Value = serde_json::from_str(&text).unwrap();
    let tv = Preprocess::torchvision;
    let configs = [
        ("torchvision", tv()),
        (
            "timm_bicubic_crop_pct_0.95",
            tv().with_resize(235)
                .with_interpolation(Interpolation::Bicubic),
        ),
        ("pad_and_crop", tv().with_resize(100).with_crop(90, 120)),
        ("odd_sizes", tv().with_resize(161).with_crop(131, 97)),
    ];
    let sha = |bytes: &mut dyn Iterator<Item = u8>| {
        let mut h = Sha256::new();
        h.update(bytes.collect::<Vec<u8>>());
        format!("{:x}", h.finalize())
    };
    let images = golden["images"].as_object().unwrap();
    assert_eq!(images.len(), 43);
    for (rel, per_config) in images {
        for (name, p) in &configs {
            let want = &per_config[*name];
            let img = load_rgb8(&testdata.join(rel), p.gray16()).unwrap();
            let cropped = p.resize(&img);
            assert_eq!(
                sha(&mut cropped.pixels.iter().copied()),
                want["crop_sha256"].as_str().unwrap(),
                "{rel} {name}: the cropped image differs from torchvision's"
            );
            let x = p.tensor_of_resized(&cropped);
            assert_eq!(
                sha(&mut x.iter().flat_map(|v| v.to_le_bytes())),
                want["tensor_sha256"].as_str().unwrap(),
                "{rel} {name}: the tensor differs from torchvision's"
            );
        }
    }
}
