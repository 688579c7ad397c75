//! Robust activation maximisation, the report's patterns, at 224 px on full-size ResNet50 →
//! `layer4.1` and VGG16 → `features.28` (random weights): seconds per step for one map and for
//! four optimised together, with the 3×3 layers' tracked Winograd tile F(4×4, 3×3) (the default)
//! and F(2×2, 3×3) (the only one before issue 23), alternated `--runs` times and the fastest
//! kept, next to PyTorch's Adam step through the same layers with `--torch` (input gradient
//! only, the batch one image per map).

use std::time::Instant;

use anyhow::Result;
use fmv_core::{Event, PatternConfig, Preprocess, RobustConfig, Visualizer};
use fmv_models::{Arch, LayerRef, Tile};

use super::{Row, Setup, Table, random_model, resnet50, vgg16};

/// Steps timed per run, after [`WARM_UP`] steps (the first makes the Winograd kernels).
const TIMED: usize = 8;
const WARM_UP: usize = 2;

/// Seconds per robust step of `filters` at `layer`, the 3×3 layers taking tiles up to `tile`.
fn per_step(viz: &Visualizer, layer: &LayerRef, filters: &[usize], tile: Tile) -> Result<f64> {
    let robust = RobustConfig::new()
        .with_steps(WARM_UP + TIMED)
        .with_tracked_tile(tile);
    let cfg = PatternConfig::new(layer.clone(), filters.to_vec(), robust);
    let mut marks = Vec::new();
    let mut observe = |e: &Event<'_>| {
        if let Event::Step { .. } = e {
            marks.push(Instant::now());
        }
    };
    viz.maximize(&cfg, &mut observe)?;
    Ok((marks[WARM_UP + TIMED - 1] - marks[WARM_UP - 1]).as_secs_f64() / TIMED as f64)
}

pub fn rows(setup: &Setup, table: &Table) -> Result<()> {
    let nets: [(Arch, &str, i64); 2] = [(resnet50(), "layer4.1", -2), (vgg16(), "features.28", 12)];
    for (arch, layer_name, original_layer) in nets {
        let viz = Visualizer::new(random_model(&arch, 1, &setup.device)?)
            .with_preprocess(Preprocess::imagenet());
        let layer: LayerRef = layer_name.parse()?;
        let net = if layer_name == "layer4.1" {
            "resnet50"
        } else {
            "vgg16"
        };
        for filters in [vec![7], vec![7, 8, 9, 10]] {
            let torch = setup
                .original
                .as_ref()
                .map(|o| o.robust_step(&arch, original_layer, &filters, 224))
                .transpose()?;
            // The two tiles alternated `--runs` times, each row the fastest of its runs: this
            // machine's speed drifts by more than the difference between them.
            let tiles = [(Tile::F4, "F(4×4) (default)"), (Tile::F2, "F(2×2)")];
            let mut best = [f64::INFINITY; 2];
            for _ in 0..setup.runs.max(1) {
                for (b, (tile, _)) in best.iter_mut().zip(tiles) {
                    *b = b.min(per_step(&viz, &layer, &filters, tile)?);
                }
            }
            for ((_, name), secs) in tiles.into_iter().zip(best) {
                let mut row = Row::new(
                    format!(
                        "{net} → {layer_name}, robust step at 224 px, {} map{}, {name}",
                        filters.len(),
                        if filters.len() == 1 { "" } else { "s together" }
                    ),
                    "s/step",
                    secs,
                );
                if let Some(t) = torch {
                    row = row.with_original(t);
                }
                table.print(&row);
            }
        }
    }
    Ok(())
}
