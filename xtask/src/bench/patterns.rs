//! Activation maximisation on full-size ResNet50 (random weights) → `layer4.1`, filter 7: seconds
//! per optimisation step (forward + input gradient + Adam) at 224 and 448 px, and whole compat
//! runs with the original's schedule, for filter 7 alone and for filters 7 and 8 together; each
//! with the GFLOP/s its convolutions' work comes to ([`resnet50_step_gflop`]).

use std::time::Instant;

use anyhow::Result;
use fmv_core::{CompatConfig, PatternConfig, Preprocess, Visualizer};
use fmv_models::{Arch, LayerRef};

use super::{Row, Setup, Table, random_model, resnet50, root, run_measured, weights_file};

const FILTER: usize = 7;

fn run(viz: &Visualizer, cfg: &PatternConfig) -> Result<(f64, usize)> {
    let start = Instant::now();
    let p = viz.maximize(cfg, &mut ())?;
    Ok((start.elapsed().as_secs_f64(), p[0].activation_trace.len()))
}

pub fn rows(setup: &Setup, full: bool, table: &Table) -> Result<()> {
    let arch = resnet50();
    let original = setup.original.as_ref();
    let viz = Visualizer::new(random_model(&arch, 1, &setup.device)?)
        .with_preprocess(Preprocess::original());
    let layer = LayerRef::Compat(-2);
    for side in [224usize, 448] {
        let compat = CompatConfig::new()
            .with_init_size(side)
            .with_upscaling_steps(1)
            .with_opt_steps(5);
        let cfg = PatternConfig::new(layer.clone(), vec![FILTER], compat);
        run(&viz, &cfg)?; // warm-up
        let (secs, steps) = run(&viz, &cfg)?;
        let per_step = secs / steps as f64;
        let mut row = Row::new(
            format!("resnet50 → layer4.1, patterns step at {side}×{side}"),
            "s/step",
            per_step,
        )
        .with_gflops(resnet50_step_gflop(side) / per_step);
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
        let compat = CompatConfig::new().with_upscaling_steps(scales);
        let sizes = compat.sizes();
        let last = *sizes.last().unwrap_or(&0);
        let work: f64 = sizes.iter().map(|&s| resnet50_step_gflop(s)).sum::<f64>()
            * (compat.opt_steps() * filters.len()) as f64;
        let cfg = PatternConfig::new(layer.clone(), filters.clone(), compat);
        let (secs, _) = run(&viz, &cfg)?;
        let maps = match filters.len() {
            1 => String::new(),
            n => format!(", {n} maps (s for all)"),
        };
        let mut row = Row::new(
            format!("resnet50 → layer4.1, compat patterns, {scales} scales (33 → {last} px){maps}"),
            "s",
            secs,
        )
        .with_gflops(work / secs);
        if let Some(o) = original {
            row = row.with_original(o.patterns(&arch, 1, &filters, scales)?);
        }
        table.print(&row);
    }
    Ok(())
}

/// One bottleneck block of ResNet50 on the way to `layer4.1`: its inner and output widths, its
/// input's channels, the side of its input map and of its output map, and whether it opens a
/// stage (and so has a shortcut convolution).
struct Block {
    inner: usize,
    width: usize,
    c_in: usize,
    side_in: usize,
    side_out: usize,
    first: bool,
}

/// ResNet50's geometry on the way to `layer4.1` for one `side × side` image, read from
/// [`resnet50`]'s stages: the side of the stem convolution's output, of the stem pool's output,
/// and every block up to `layer4.1` (all but the last block of the last stage).
fn resnet50_to_layer4_1(side: usize) -> (usize, usize, Vec<Block>) {
    let Arch::ResNet(config) = resnet50() else {
        unreachable!("resnet50() is a ResNet")
    };
    let out = |len: usize, k: usize, s: usize, p: usize| (len + 2 * p - k) / s + 1;
    let stem = out(side, 7, 2, 3);
    let mut hw = out(stem, 3, 2, 1);
    let pooled = hw;
    let mut c_in = config.stem_width;
    let mut blocks = Vec::new();
    for stage in &config.stages {
        for b in 0..stage.n_blocks {
            let s = if b == 0 { stage.stride } else { 1 };
            let o = out(hw, 3, s, 1);
            blocks.push(Block {
                inner: stage.inner,
                width: stage.out,
                c_in,
                side_in: hw,
                side_out: o,
                first: b == 0,
            });
            (hw, c_in) = (o, stage.out);
        }
    }
    blocks.pop(); // layer4.2
    (stem, pooled, blocks)
}

/// MiB of every map ResNet50 computes on the way to `layer4.1` for one `side × side` image, in
/// f32: the stem convolution and pool, and in each block the outputs of its three convolutions,
/// its shortcut convolution and the block itself. What a gradient step has to keep.
fn resnet50_activation_mib(side: usize) -> f64 {
    let (stem, pooled, blocks) = resnet50_to_layer4_1(side);
    let mut floats = 64 * (stem * stem + pooled * pooled);
    for b in blocks {
        let (i, o) = (b.side_in * b.side_in, b.side_out * b.side_out);
        floats += b.inner * i + b.inner * o + 2 * b.width * o;
        if b.first {
            floats += b.width * o;
        }
    }
    floats as f64 * 4.0 / (1u64 << 20) as f64
}

/// GFLOP of one activation-maximisation step on ResNet50 → `layer4.1` at `side × side`:
/// multiply-adds ×2 of every convolution counted by the direct algorithm (as the forward rows
/// count them), once for the forward pass and once for the input gradient, which costs the
/// same. What fmv computes is less: its 3×3 stride-1 convolutions use Winograd F(2×2, 3×3),
/// 2.25× fewer multiplications.
fn resnet50_step_gflop(side: usize) -> f64 {
    let (stem, _, blocks) = resnet50_to_layer4_1(side);
    let mut macs = 64 * 3 * 49 * stem * stem;
    for b in blocks {
        let (i, o) = (b.side_in * b.side_in, b.side_out * b.side_out);
        macs += b.c_in * b.inner * i + b.inner * b.inner * 9 * o + b.inner * b.width * o;
        if b.first {
            macs += b.c_in * b.width * o;
        }
    }
    2.0 * 2.0 * macs as f64 / 1e9
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The step's count against the forward rows' count of the whole network (8.18 GFLOP at
    /// 224 px, torchvision's 4.09 G multiply-adds), walked separately: a step is the forward
    /// pass to `layer4.1` twice, and the whole network adds `layer4.2` (7×7 maps) and the
    /// classifier.
    #[test]
    fn a_step_counts_the_forward_pass_to_layer4_1_twice() {
        let layer4_2 = 2.0 * (2048 * 512 + 512 * 512 * 9 + 512 * 2048) as f64 * 49.0 / 1e9;
        let classifier = 2.0 * (2048 * 1000) as f64 / 1e9;
        let whole = super::super::forward::gflop(&resnet50());
        let step = resnet50_step_gflop(224);
        assert!(
            (step / 2.0 + layer4_2 + classifier - whole).abs() < 1e-9,
            "{step} / 2 + {layer4_2} + {classifier} against {whole}"
        );
    }
}
