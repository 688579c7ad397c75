//! Robust activation maximisation, the report's patterns, at 224 px on full-size ResNet50 →
//! `layer4.1` and VGG16 → `features.28` (random weights): seconds per step for one map and for
//! four optimised together, with the 3×3 layers' tracked Winograd tile F(4×4, 3×3) (the default)
//! and F(2×2, 3×3) (the only one before issue 23), alternated `--runs` times and the fastest
//! kept, next to PyTorch's Adam step through the same layers with `--torch` (input gradient
//! only, the batch one image per map). Each row comes twice: wall-clock seconds per step, and
//! CPU seconds per step (user + system, all threads; the run with the fastest wall-clock time),
//! the steadier of the two on a host that steals time or is slow to wake a thread.

use std::time::Instant;

use anyhow::{Context, Result};
use fmv_core::{Event, PatternConfig, Preprocess, RobustConfig, Visualizer};
use fmv_models::{Arch, LayerRef, Tile};

use super::{PerStep, Row, Setup, Table, cpu_seconds, random_model, resnet50, vgg16};

/// Steps timed per run, after [`WARM_UP`] steps (the first makes the Winograd kernels).
const TIMED: usize = 8;
const WARM_UP: usize = 2;

/// Seconds per robust step of `filters` at `layer`, the 3×3 layers taking tiles up to `tile`.
fn per_step(viz: &Visualizer, layer: &LayerRef, filters: &[usize], tile: Tile) -> Result<PerStep> {
    let robust = RobustConfig::new()
        .with_steps(WARM_UP + TIMED)
        .with_tracked_tile(tile);
    let cfg = PatternConfig::new(layer.clone(), filters.to_vec(), robust);
    let mut marks: Vec<(Instant, Option<f64>)> = Vec::new();
    let mut observe = |e: &Event<'_>| {
        if let Event::Step { .. } = e {
            marks.push((Instant::now(), cpu_seconds().ok()));
        }
    };
    viz.maximize(&cfg, &mut observe)?;
    let (wall_0, cpu_0) = marks[WARM_UP - 1];
    let (wall_1, cpu_1) = marks[WARM_UP + TIMED - 1];
    let cpu = cpu_1
        .zip(cpu_0)
        .map(|(end, start)| end - start)
        .context("getrusage failed")?;
    Ok(PerStep {
        wall: (wall_1 - wall_0).as_secs_f64() / TIMED as f64,
        cpu: cpu / TIMED as f64,
    })
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
            let mut best: [Option<PerStep>; 2] = [None; 2];
            for _ in 0..setup.runs.max(1) {
                for (b, (tile, _)) in best.iter_mut().zip(tiles) {
                    let run = per_step(&viz, &layer, &filters, tile)?;
                    if b.is_none_or(|b| run.wall < b.wall) {
                        *b = Some(run);
                    }
                }
            }
            for ((_, name), secs) in tiles.into_iter().zip(best.into_iter().flatten()) {
                let work = format!(
                    "{net} → {layer_name}, robust step at 224 px, {} map{}, {name}",
                    filters.len(),
                    if filters.len() == 1 { "" } else { "s together" }
                );
                let mut wall = Row::new(work.clone(), "s/step", secs.wall);
                let mut cpu = Row::new(format!("{work}, CPU time"), "CPU s/step", secs.cpu);
                if let Some(t) = torch {
                    wall = wall.with_original(t.wall);
                    cpu = cpu.with_original(t.cpu);
                }
                table.print(&wall);
                table.print(&cpu);
            }
        }
    }
    Ok(())
}
