//! The JSON files fmv reads back, of any bytes: a ranking state (`--merge` parts, a run's
//! `.partial.json`) merged and selected, an exemplars state (`fmv exemplars --merge` parts,
//! `exemplars.partial.json`) checked, merged and written as its document, and a `--top-maps`
//! file (a ranking, its `{"classes": …}` wrapper, or a plain dict) parsed and compared with a
//! run's settings.

#![no_main]

use fmv_core::{Exemplars, RankCounts};
use fmv_report::documents::{ClassMaps, ExemplarsDocument};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(counts) = serde_json::from_slice::<RankCounts>(bytes) {
        if counts.check(fmv_core::Field::Parts).is_ok() {
            if let Ok(merged) = RankCounts::merge(&[counts.clone(), counts.clone()]) {
                let _ = merged.select();
            }
            let _ = counts.select();
        }
    }
    if let Ok(found) = serde_json::from_slice::<Exemplars>(bytes) {
        if found.check(fmv_core::Field::Parts).is_ok() {
            let mut other = found.clone();
            other.shards = other.shards.iter().map(|s| s.wrapping_add(1)).collect();
            if let Ok(merged) = Exemplars::merge(&[found.clone(), other]) {
                let _ = ExemplarsDocument::from(&merged);
            }
        }
    }
    if let Ok(maps) = ClassMaps::parse(bytes) {
        let _ = maps.differences("layer4.2", "torchvision", "sha256:0");
    }
});
