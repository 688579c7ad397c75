//! The JSON files fmv reads back, of any bytes: a ranking state (`--merge` parts, a run's
//! `.partial.json`) merged and selected, and a `--top-maps` file (a ranking, its
//! `{"classes": …}` wrapper, or a plain dict) parsed and compared with a run's settings.

#![no_main]

use fmv_core::RankCounts;
use fmv_report::documents::ClassMaps;
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
    if let Ok(maps) = ClassMaps::parse(bytes) {
        let _ = maps.differences("layer4.2", "torchvision", "sha256:0");
    }
});
