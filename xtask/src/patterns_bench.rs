//! `cargo xtask bench patterns`: activation maximisation on full-size ResNet50 (random
//! weights): seconds per optimisation step (forward + input gradient + Adam) at 224 and 448,
//! and whole compat runs with the original's schedules.

use std::time::Instant;

use anyhow::Result;
use fmv_core::{Mode, PatternConfig, Preprocess, Visualizer};
use fmv_models::LayerRef;

use crate::bench::{random_model, resnet50};

fn run(viz: &Visualizer, cfg: &PatternConfig) -> Result<(f64, usize)> {
    let start = Instant::now();
    let p = viz.maximize(cfg, &mut |_| {}, &|| false)?;
    Ok((start.elapsed().as_secs_f64(), p[0].activation_trace.len()))
}

pub fn run_all(full: bool) -> Result<()> {
    let viz =
        Visualizer::new(random_model(&resnet50(), 1)?).with_preprocess(Preprocess::original());
    let layer = LayerRef::Compat(-2);
    println!("\nactivation maximisation, ResNet50 (random weights) → layer4.1, filter 7, CPU:\n");
    println!("| work | seconds | steps | s/step |");
    println!("|---|---|---|---|");
    // glibc's default allocator first, then tuned as `fmv` runs: side by side in one run.
    for tuned in [false, true] {
        if tuned {
            fmv_core::tune_glibc_malloc();
        }
        let label = if tuned {
            "malloc tuned"
        } else {
            "default malloc"
        };
        for side in [224usize, 448] {
            let cfg = PatternConfig::new(layer.clone(), vec![7])
                .with_mode(Mode::Compat)
                .with_init_size(side)
                .with_upscaling_steps(1)
                .with_opt_steps(5);
            run(&viz, &cfg)?; // warm-up
            let (secs, steps) = run(&viz, &cfg)?;
            println!(
                "| optimisation step at {side}×{side}, {label} | {secs:.2} | {steps} | {:.3} |",
                secs / steps as f64
            );
        }
    }
    let mut schedules = vec![12usize];
    if full {
        schedules.push(20);
    }
    for scales in schedules {
        let cfg = PatternConfig::new(layer.clone(), vec![7])
            .with_mode(Mode::Compat)
            .with_upscaling_steps(scales);
        let last = *cfg.sizes().last().unwrap_or(&0);
        let (secs, steps) = run(&viz, &cfg)?;
        println!(
            "| compat run, {scales} scales (33 → {last} px) | {secs:.1} | {steps} | {:.3} |",
            secs / steps as f64
        );
    }
    Ok(())
}
