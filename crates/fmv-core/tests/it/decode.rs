//! Decoding every supported format as Pillow's `convert('RGB')` does (fixtures and their
//! Pillow results made by `testdata/formats/make_formats.py`), and refusing broken files.

use std::path::{Path, PathBuf};

use fmv_core::pixels::{DecodeError, Gray16, decode_rgb8};
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

/// Images beyond Pillow's decompression-bomb limit are refused from their header, before any
/// pixel is decoded, and exactly where Pillow refuses them: 13377 × 13378 pixels is one row
/// over (`Image.open` raises `DecompressionBombError`), 13377 × 13377 is not (Pillow 13.0,
/// checked on headers patched as here).
#[test]
fn images_beyond_pillows_pixel_limit_are_refused_from_their_header() {
    // A PNG's IHDR: width and height at bytes 16..24, its CRC over bytes 12..29 at 29..33.
    let png = |w: u32, h: u32| {
        let mut b = std::fs::read(formats().join("rgb16.png")).unwrap();
        assert_eq!(&b[12..16], b"IHDR");
        b[16..20].copy_from_slice(&w.to_be_bytes());
        b[20..24].copy_from_slice(&h.to_be_bytes());
        let crc = crc32(&b[12..29]);
        b[29..33].copy_from_slice(&crc.to_be_bytes());
        b
    };
    // A baseline JPEG's SOF0: height and width 5 bytes after the marker.
    let jpeg = |w: u16, h: u16| {
        let mut b = std::fs::read(formats().join("baseline_422.jpg")).unwrap();
        let i = b.windows(2).position(|m| m == [0xFF, 0xC0]).unwrap();
        b[i + 5..i + 7].copy_from_slice(&h.to_be_bytes());
        b[i + 7..i + 9].copy_from_slice(&w.to_be_bytes());
        b
    };
    let over = "the image is 13377x13378 = 178957506 pixels, more than the 178956970 fmv opens";
    for (name, bytes) in [("png", png(13377, 13378)), ("jpeg", jpeg(13377, 13378))] {
        match decode_rgb8(&bytes, Gray16::HighByte) {
            Err(DecodeError::Corrupt(why)) => assert!(why.starts_with(over), "{name}: {why}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    // At the limit the header passes; the PNG then fails on its missing pixel data.
    match decode_rgb8(&png(13377, 13377), Gray16::HighByte) {
        Err(DecodeError::Corrupt(why)) => assert!(why.contains("IDAT"), "{why}"),
        other => panic!("{other:?}"),
    }
}

/// CRC-32 (ISO-HDLC, as PNG uses), bit by bit.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
