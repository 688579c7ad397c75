//! The maps of each class a command reads (`--top-maps`): the JSON of `fmv rank` or a plain
//! `{"class": [channels]}`, checked against the run that reads it.

use std::path::Path;

use anyhow::{Result, anyhow, bail};
use fmv::core::files::{MAX_JSON_BYTES, read_limited};
use fmv::report::documents::{ClassMaps, Difference};
use fmv::{ImageFolder, LayerRef, Visualizer};

/// Reads `--top-maps` (bounded in size): the JSON of `fmv rank` or a plain dict.
pub fn read_top_maps(path: &Path) -> Result<ClassMaps> {
    let bytes = read_limited(path, MAX_JSON_BYTES)?;
    ClassMaps::parse(&bytes).map_err(|reason| anyhow!("{}: {reason}", path.display()))
}

/// Refuses maps ranked at another layer or with other weights, and warns of maps ranked with
/// another preprocessing (the same channels, seen through other inputs) or by a ranking that
/// does not record its weights.
pub fn check_made_by(
    maps: &ClassMaps,
    path: &Path,
    viz: &Visualizer,
    layer: &LayerRef,
) -> Result<()> {
    let net = viz.backbone();
    let layer = &net.layer(viz.resolve(layer)?).name;
    let weights = net.provenance()?.id;
    let file = path.display();
    for difference in maps.differences(layer, &viz.preprocess().name(), weights.as_str()) {
        match difference {
            Difference::Layer { file: theirs, run } => bail!(
                "{file} ranks the maps of `{theirs}`, and this run reads `{run}` (--layer): \
                 channel numbers of one layer mean nothing at another; pass --layer {theirs} or \
                 rank again at `{run}`"
            ),
            Difference::Weights { file: theirs, run } => bail!(
                "{file} was ranked with other weights (sha256 {theirs}) than these (sha256 {run}); \
                 rank again with these weights"
            ),
            Difference::Preprocess { file: theirs, run } => eprintln!(
                "warning: {file} was ranked with the preprocessing `{theirs}`, and this run uses \
                 `{run}`: the same maps, seen through other inputs"
            ),
            Difference::UnknownWeights => eprintln!(
                "warning: {file} does not record the weights it was ranked with (a ranking of an \
                 older fmv); make sure they are these"
            ),
        }
    }
    Ok(())
}

/// Warns of each class of the maps that is no class of the test folder (a ranking of another
/// dataset, or a typo): no image is its own, which has `consequence`.
pub fn warn_of_classes_without_images(
    top_maps: &[(String, Vec<usize>)],
    test: &ImageFolder,
    consequence: &str,
) {
    let names = test.class_names();
    for (class, _) in top_maps.iter().filter(|(c, _)| !names.contains(c)) {
        eprintln!(
            "warning: class `{class}` of the maps is no class of {} (classes there: {}); \
             {consequence}",
            test.root.display(),
            names.join(", ")
        );
    }
}
