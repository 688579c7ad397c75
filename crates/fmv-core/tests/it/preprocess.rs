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
