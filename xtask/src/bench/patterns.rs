//! Activation maximisation on full-size ResNet50 (random weights) → `layer4.1`, filter 7: seconds
//! per optimisation step (forward + input gradient + Adam) at 224 and 448 px, and whole compat
//! runs with the original's schedule, for filter 7 alone and for filters 7 and 8 together.

use std::time::Instant;

use anyhow::Result;
use fmv_core::{Mode, PatternConfig, Preprocess, Visualizer};
use fmv_models::LayerRef;

use super::{Row, Setup, Table, random_model, resnet50, root, run_measured, weights_file};

const FILTER: usize = 7;

fn run(viz: &Visualizer, cfg: &PatternConfig) -> Result<(f64, usize)> {
    let start = Instant::now();
    let p = viz.maximize(cfg, &mut |_| {}, &|| false)?;
    Ok((start.elapsed().as_secs_f64(), p[0].activation_trace.len()))
}

pub fn rows(setup: &Setup, full: bool, table: &Table) -> Result<()> {
    let arch = resnet50();
    let original = setup.original.as_ref();
    let viz = Visualizer::new(random_model(&arch, 1, &setup.device)?)
        .with_preprocess(Preprocess::original());
    let layer = LayerRef::Compat(-2);
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
        table.print(&row);
    }
    // One map, then two (which fmv runs side by side, one per thread, and the original one
    // after the other).
    let mut runs = vec![(12usize, vec![FILTER]), (12, vec![FILTER, FILTER + 1])];
    if full {
        runs.push((20, vec![FILTER]));
    }
    for (scales, filters) in runs {
        let cfg = PatternConfig::new(layer.clone(), filters.clone())
            .with_mode(Mode::Compat)
            .with_upscaling_steps(scales);
        let last = *cfg.sizes().last().unwrap_or(&0);
        let (secs, _) = run(&viz, &cfg)?;
        let maps = match filters.len() {
            1 => String::new(),
            n => format!(", {n} maps (s for all)"),
        };
        let mut row = Row::new(
            format!("resnet50 → layer4.1, compat patterns, {scales} scales (33 → {last} px){maps}"),
            "s",
            secs,
        );
        if let Some(o) = original {
            row = row.with_original(o.patterns(&arch, 1, &filters, scales)?);
        }
        table.print(&row);
    }
    Ok(())
}

/// MiB of every map ResNet50 computes on the way to `layer4.1` for one `side × side` image, in
/// f32: the stem convolution and pool, and in each block the outputs of its three convolutions,
/// its shortcut convolution and the block itself. What a gradient step has to keep.
fn resnet50_activation_mib(side: usize) -> f64 {
    let out = |len: usize, k: usize, s: usize, p: usize| (len + 2 * p - k) / s + 1;
    let stem = out(side, 7, 2, 3);
    let mut hw = out(stem, 3, 2, 1);
    let mut floats = 64 * (stem * stem + hw * hw);
    let stages = [
        (64, 256, 1, 3),
        (128, 512, 2, 4),
        (256, 1024, 2, 6),
        (512, 2048, 2, 2),
    ];
    for (inner, width, stride, blocks) in stages {
        for b in 0..blocks {
            let s = if b == 0 { stride } else { 1 };
            let o = out(hw, 3, s, 1);
            floats += inner * hw * hw + inner * o * o + 2 * width * o * o;
            if b == 0 {
                floats += width * o * o;
            }
            hw = o;
        }
    }
    floats as f64 * 4.0 / (1u64 << 20) as f64
}

/// Peak RSS of a whole `fmv patterns` process taking two compat steps at 986×986 px (the
/// default schedule's last scale), next to the original doing the same.
pub fn memory_row(setup: &Setup) -> Result<Row> {
    let (arch, side) = (resnet50(), 986);
    let weights = weights_file(&arch, 1)?;
    let out = root().join("target/bench/pattern-986.png");
    let mut cmd = setup.fmv("patterns");
    cmd.args(["--preprocess", "original", "--mode", "compat", "--weights"])
        .arg(&weights)
        .args(["--layer", "-2", "--filter", &FILTER.to_string()])
        .args([
            "--init-size",
            &side.to_string(),
            "--upscaling-steps",
            "1",
            "--opt-steps",
            "2",
        ])
        .arg("-o")
        .arg(&out)
        .stdout(std::process::Stdio::null());
    let (_, rss) = run_measured(&mut cmd)?;
    let activations = resnet50_activation_mib(side);
    let mut row = Row::new(
        format!(
            "resnet50 → layer4.1, 2 compat steps at {side}×{side}, whole process (its maps: {activations:.0} MiB; fmv / maps = {:.2})",
            rss / activations
        ),
        "peak RSS MiB",
        rss,
    );
    if let Some(o) = &setup.original {
        row = row.with_original(o.step_rss(&arch, 1, FILTER, side)?);
    }
    Ok(row)
}
