//! Decoding every supported format as Pillow's `convert('RGB')` does (fixtures and their
//! Pillow results made by `testdata/formats/make_formats.py`), and refusing broken files.

use std::path::{Path, PathBuf};

use fmv_core::{DecodeError, Gray16, decode_rgb8};
use sha2::{Digest, Sha256};

fn formats() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/formats")
}

#[test]
fn every_format_decodes_to_pillows_pixels() {
    let pillow: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(formats().join("pillow.json")).unwrap())
            .unwrap();
    let mut checked = Vec::new();
    for (name, want) in pillow.as_object().unwrap() {
        let bytes = std::fs::read(formats().join(name)).unwrap();
        let img =
            decode_rgb8(&bytes, Gray16::ClipLikePillow).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let size = [img.width as u64, img.height as u64];
        assert_eq!(want["size"], serde_json::json!(size), "{name}");
        let got = format!("{:x}", Sha256::digest(&img.pixels));
        assert_eq!(
            got,
            want["rgb_sha256"].as_str().unwrap(),
            "{name} ({}) differs from Pillow",
            want["mode"]
        );
        checked.push(name.clone());
    }
    assert_eq!(checked.len(), 11, "{checked:?}");
}

#[test]
fn grey16_follows_the_preset() {
    let bytes = std::fs::read(formats().join("grey16.png")).unwrap();
    let clip = decode_rgb8(&bytes, Gray16::ClipLikePillow).unwrap();
    let high = decode_rgb8(&bytes, Gray16::HighByte).unwrap();
    assert_ne!(clip.pixels, high.pixels);
    assert!(
        high.pixels.iter().all(|&v| v <= 3),
        "values < 1024 have a high byte of at most 3"
    );
}

#[test]
fn broken_files_are_refused_with_a_reason() {
    let jpg = std::fs::read(formats().join("baseline_422.jpg")).unwrap();
    match decode_rgb8(&jpg[..jpg.len() / 2], Gray16::HighByte) {
        Err(DecodeError::Corrupt(reason)) => assert!(reason.contains("truncated"), "{reason}"),
        other => panic!("a truncated JPEG decoded: {other:?}"),
    }
    let mut garbled = jpg.clone();
    for b in garbled[20..200].iter_mut() {
        *b = 0xFF;
    }
    assert!(matches!(
        decode_rgb8(&garbled, Gray16::HighByte),
        Err(DecodeError::Corrupt(_))
    ));
    let png = std::fs::read(formats().join("palette_trns.png")).unwrap();
    assert!(matches!(
        decode_rgb8(&png[..png.len() / 2], Gray16::HighByte),
        Err(DecodeError::Corrupt(_))
    ));
    assert_eq!(
        decode_rgb8(b"", Gray16::HighByte),
        Err(DecodeError::NotAnImage)
    );
    assert_eq!(
        decode_rgb8(b"\x00\x00\x01Bud1 .DS_Store", Gray16::HighByte),
        Err(DecodeError::NotAnImage)
    );
}
