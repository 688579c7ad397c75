//! Activation maximisation on full-size ResNet50 (random weights) → `layer4.1`, filter 7: seconds
//! per optimisation step (forward + input gradient + Adam) at 224 and 448 px, and whole compat
//! runs with the original's schedule.

use std::time::Instant;

use anyhow::Result;
use fmv_core::{Mode, PatternConfig, Preprocess, Visualizer};
use fmv_models::LayerRef;

use super::{Original, Row, random_model, resnet50};

const FILTER: usize = 7;

fn run(viz: &Visualizer, cfg: &PatternConfig) -> Result<(f64, usize)> {
    let start = Instant::now();
    let p = viz.maximize(cfg, &mut |_| {}, &|| false)?;
    Ok((start.elapsed().as_secs_f64(), p[0].activation_trace.len()))
}

pub fn rows(full: bool, original: Option<&Original>) -> Result<Vec<Row>> {
    let arch = resnet50();
    let viz = Visualizer::new(random_model(&arch, 1)?).with_preprocess(Preprocess::original());
    let layer = LayerRef::Compat(-2);
    let mut rows = Vec::new();
    for side in [224usize, 448] {
        let cfg = PatternConfig::new(layer.clone(), vec![FILTER])
            .with_mode(Mode::Compat)
            .with_init_size(side)
            .with_upscaling_steps(1)
            .with_opt_steps(5);
        run(&viz, &cfg)?; // warm-up
        let (secs, steps) = run(&viz, &cfg)?;
        let mut row = Row::new(
            format!("resnet50 → layer4.1, patterns step at {side}×{side}"),
            "s/step",
            secs / steps as f64,
        );
        if let Some(o) = original {
            row = row.with_original(o.step(&arch, 1, FILTER, side)?);
        }
        rows.push(row);
    }
    let schedules = if full { vec![12usize, 20] } else { vec![12] };
    for scales in schedules {
        let cfg = PatternConfig::new(layer.clone(), vec![FILTER])
            .with_mode(Mode::Compat)
            .with_upscaling_steps(scales);
        let last = *cfg.sizes().last().unwrap_or(&0);
        let (secs, _) = run(&viz, &cfg)?;
        let mut row = Row::new(
            format!("resnet50 → layer4.1, compat patterns, {scales} scales (33 → {last} px)"),
            "s",
            secs,
        );
        if let Some(o) = original {
            row = row.with_original(o.patterns(&arch, 1, FILTER, scales)?);
        }
        rows.push(row);
    }
    Ok(rows)
}
