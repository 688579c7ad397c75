//! The other files fmv reads, mutated at random on stable Rust, as CI runs it (the nightly fuzz
//! targets in `fuzz/` search far longer): images through fmv's own decoder, ranking states
//! (`--merge` parts, `.partial.json`) through checking, merging and selection, and
//! `--top-maps` files through parsing and comparison. Each ends in a value or an error with a
//! message, never a panic.

use std::path::{Path, PathBuf};

use fmv_core::pixels::{DecodeError, Gray16, decode_rgb8};
use fmv_core::rng::Rng;
use fmv_core::{Field, RankCounts};
use fmv_report::documents::ClassMaps;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

fn below(rng: &mut Rng, n: usize) -> usize {
    (rng.next_u64() % n.max(1) as u64) as usize
}

/// One to four byte-level mutations (a bit flipped, a boundary byte, a chunk erased or
/// duplicated, the tail cut), or for JSON a number replaced by an extreme one.
fn mutate(bytes: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut b = bytes.to_vec();
    for _ in 0..1 + below(rng, 4) {
        if b.is_empty() {
            b.push(b'0');
        }
        let at = below(rng, b.len());
        match below(rng, 6) {
            0 => b[at] ^= 1 << below(rng, 8),
            1 => b[at] = [0x00, 0xff, b'-', b'"', b'9', b'['][below(rng, 6)],
            2 => {
                let n = below(rng, 64).min(b.len() - at);
                b.drain(at..at + n);
            }
            3 => {
                let n = below(rng, 64).min(b.len() - at);
                let chunk = b[at..at + n].to_vec();
                let to = below(rng, b.len());
                b.splice(to..to, chunk);
            }
            4 => {
                // The number that starts at or after `at`, replaced.
                if let Some(start) = b[at..].iter().position(u8::is_ascii_digit) {
                    let start = at + start;
                    let end = b[start..]
                        .iter()
                        .position(|c| !c.is_ascii_digit())
                        .map_or(b.len(), |e| start + e);
                    let extreme =
                        ["18446744073709551615", "4294967295", "-1", "1e308", "0"][below(rng, 5)];
                    b.splice(start..end, extreme.bytes());
                }
            }
            _ => b.truncate(at),
        }
    }
    b
}

#[test]
fn mutated_images_decode_or_are_refused_with_a_reason() {
    let mut rng = Rng::new(1);
    let dir = testdata().join("formats");
    let mut decoded = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("py" | "json")
        ) {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        for _ in 0..60 {
            let mutant = mutate(&bytes, &mut rng);
            for gray16 in [Gray16::ClipLikePillow, Gray16::HighByte] {
                match decode_rgb8(&mutant, gray16) {
                    Ok(image) => {
                        assert_eq!(image.pixels.len(), image.width * image.height * 3);
                        decoded += 1;
                    }
                    Err(DecodeError::NotAnImage) => {}
                    Err(DecodeError::Corrupt(why)) => assert!(!why.is_empty()),
                }
            }
        }
    }
    assert!(
        decoded > 0,
        "no mutant decoded: the test would prove little"
    );
}

#[test]
fn mutated_ranking_states_are_refused_or_merge() {
    let mut rng = Rng::new(2);
    let part = std::fs::read(testdata().join("hostile/rank_part.json")).unwrap();
    let (mut parsed, mut checked) = (0, 0);
    for _ in 0..2000 {
        let mutant = mutate(&part, &mut rng);
        let Ok(counts) = serde_json::from_slice::<RankCounts>(&mutant) else {
            continue;
        };
        parsed += 1;
        if counts.check(Field::Parts).is_err() {
            continue;
        }
        checked += 1;
        if let Ok(merged) = RankCounts::merge(&[counts.clone(), counts.clone()]) {
            let _ = merged.select();
        }
        match counts.select() {
            Ok(r) => assert_eq!(r.classes.len(), counts.classes.len()),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
    assert!(
        parsed > 0 && checked > 0,
        "{parsed} parsed, {checked} checked"
    );
}

#[test]
fn mutated_top_maps_files_parse_or_are_refused() {
    let mut rng = Rng::new(3);
    let rank = std::fs::read(testdata().join("hostile/rank.json")).unwrap();
    let mut parsed = 0;
    for _ in 0..2000 {
        let mutant = mutate(&rank, &mut rng);
        match ClassMaps::parse(&mutant) {
            Ok(maps) => {
                parsed += 1;
                let _ = maps.differences("layer4.0", "imagenet", "0");
            }
            Err(e) => assert!(!e.is_empty()),
        }
    }
    assert!(parsed > 0);
}

/// The counts of a part that do not add up are refused by name, not merged into nonsense
/// (counts longer than the channels, a map counted in more images than were used, a shard
/// outside the count, sums missing, counts that overflow when added).
#[test]
fn inconsistent_ranking_states_are_refused() {
    let part: serde_json::Value =
        serde_json::from_slice(&std::fs::read(testdata().join("hostile/rank_part.json")).unwrap())
            .unwrap();
    let good: RankCounts = serde_json::from_value(part.clone()).unwrap();
    good.check(Field::Parts).unwrap();
    /// What the error says, and the edit of the part's JSON.
    type Edit = (&'static str, fn(&mut serde_json::Value));
    let edits: [Edit; 4] = [
        ("counts and", |v| {
            v["classes"][0]["counts"]
                .as_array_mut()
                .unwrap()
                .push(0.into())
        }),
        ("times in", |v| v["classes"][0]["counts"][0] = 1000.into()),
        ("shards", |v| v["shards"][0] = 7.into()),
        ("sums for", |v| {
            v["classes"][1]["mean_sum"].as_array_mut().unwrap().pop();
        }),
    ];
    for (says, edit) in edits {
        let mut v = part.clone();
        edit(&mut v);
        let bad: RankCounts = serde_json::from_value(v).unwrap();
        let err = RankCounts::merge(&[bad]).unwrap_err().to_string();
        assert!(err.contains("do not add up") && err.contains(says), "{err}");
    }
    // Counts that overflow a u32 when two parts are added.
    let mut big = good.clone();
    big.shards = vec![0];
    for c in &mut big.classes {
        c.n_images = u32::MAX as usize;
        c.n_done = u32::MAX as usize;
        c.counts[0] = u32::MAX;
    }
    let mut other = big.clone();
    other.shards = vec![1];
    let err = RankCounts::merge(&[big, other]).unwrap_err().to_string();
    assert!(err.contains("more images than fit"), "{err}");
}
