//! `cargo xtask bench`: one table of fmv's speed and memory on this machine, next to the
//! original (PyTorch) doing the same work in the same run when `--torch PYTHON` names a Python
//! with torch, torchvision, opencv and safetensors.
//!
//! Rows: the 2048³ matmul ceiling; ResNet50 and VGG16 forward passes (batch 1 and 8, ms per
//! image and GFLOP/s); an activation-maximisation step at 224 and 448 px and whole compat runs
//! (12 scales; with `--full` also the default 20 scales up to 986 px); `fmv rank` as a whole
//! process over a generated folder of JPEGs (ms per image and peak RSS; with `--full` also at
//! four times the images, to show memory flat in their number). Seeded random full-size
//! weights, written once to `target/bench/` so that both sides load the same file.

mod forward;
mod original;
mod patterns;
mod rank;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use fmv_models::Arch;

pub use forward::{random_model, random_tensors, resnet50};
use original::Original;

/// What `cargo xtask bench` measures.
pub struct Options {
    /// Timed repetitions of each forward pass (the minimum is reported).
    pub runs: usize,
    /// Images in the generated ranking folder.
    pub images: usize,
    /// Also the default 20-scale patterns schedule and ranking at 4× the images.
    pub full: bool,
    /// A Python with torch to time the original on the same work.
    pub torch: Option<PathBuf>,
    /// Only these parts (`forward`, `patterns`, `rank`); all when empty.
    pub only: Vec<String>,
}

/// One line of the table.
pub struct Row {
    work: String,
    unit: &'static str,
    fmv: f64,
    gflops: Option<f64>,
    rss_mib: Option<f64>,
    original: Option<f64>,
}

impl Row {
    fn new(work: impl Into<String>, unit: &'static str, fmv: f64) -> Self {
        Row {
            work: work.into(),
            unit,
            fmv,
            gflops: None,
            rss_mib: None,
            original: None,
        }
    }

    fn with_gflops(mut self, g: f64) -> Self {
        self.gflops = Some(g);
        self
    }

    fn with_rss(mut self, mib: f64) -> Self {
        self.rss_mib = Some(mib);
        self
    }

    fn with_original(mut self, v: f64) -> Self {
        self.original = Some(v);
        self
    }
}

/// Runs a command and returns its wall time in seconds and its own peak RSS in MiB: the
/// largest `VmHWM` of `/proc/PID/status`, read every 20 ms. (`wait4`'s `ru_maxrss` would count
/// the pages the child shared with this process between fork and exec: the benchmark's own
/// gigabytes after the pattern runs.)
pub(crate) fn run_measured(cmd: &mut Command) -> Result<(f64, f64)> {
    let start = Instant::now();
    let mut child = cmd.spawn().context("cannot start fmv")?;
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            let hwm = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
            peak_kib = peak_kib.max(hwm.unwrap_or(0));
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let secs = start.elapsed().as_secs_f64();
    if !status.success() {
        bail!("fmv rank failed ({status})");
    }
    Ok((secs, peak_kib as f64 / 1024.0))
}

/// `target/release/fmv`, built first (release, as users run it).
fn fmv_binary() -> Result<PathBuf> {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "--bin", "fmv"])
        .current_dir(root())
        .status()?;
    if !status.success() {
        bail!("cannot build fmv");
    }
    Ok(root().join("target/release/fmv"))
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `target/bench/NAME-SEED.safetensors` with [`random_tensors`], written once.
fn weights_file(arch: &Arch, seed: u64) -> Result<PathBuf> {
    let dir = root().join("target/bench");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{}-{seed}.safetensors", arch.name()));
    if !path.exists() {
        let tensors: HashMap<String, candle_core::Tensor> = random_tensors(arch, seed)?;
        let tmp = path.with_extension("partial");
        candle_core::safetensors::save(&tensors, &tmp)?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok(path)
}

pub fn run(opts: &Options) -> Result<()> {
    fmv_core::tune_glibc_malloc(); // as `fmv` runs
    let wants = |part: &str| opts.only.is_empty() || opts.only.iter().any(|p| p == part);
    let original = opts.torch.as_deref().map(Original::new).transpose()?;
    let threads = candle_core::utils::get_num_threads();
    let (ceiling, ceiling_row) = forward::ceiling(opts.runs)?;
    let mut rows = vec![ceiling_row];
    if wants("forward") {
        rows.extend(forward::rows(opts.runs, original.as_ref())?);
    }
    if wants("patterns") {
        rows.extend(patterns::rows(opts.full, original.as_ref())?);
        rows.push(patterns::memory_row(original.as_ref())?);
    }
    if wants("rank") {
        rows.extend(rank::rows(opts.images, opts.full, original.as_ref())?);
    }

    println!(
        "fmv {} on the CPU, {threads} threads, f32; forward passes: minimum of {} runs after a \
         warm-up; the original: PyTorch {}",
        env!("CARGO_PKG_VERSION"),
        opts.runs,
        original
            .as_ref()
            .map_or("not run (give --torch PYTHON)".into(), |o| o
                .version
                .clone()),
    );
    println!();
    println!(
        "| work | unit | fmv | GFLOP/s | % of ceiling | peak RSS MiB | original | fmv / original |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let opt = |v: Option<f64>, digits: usize| v.map_or("".into(), |v| format!("{v:.digits$}"));
    for r in &rows {
        let digits = if r.fmv < 10.0 { 3 } else { 1 };
        let fmv = if r.unit == "relative" {
            format!("{:.1e}", r.fmv)
        } else {
            format!("{:.digits$}", r.fmv)
        };
        println!(
            "| {} | {} | {fmv} | {} | {} | {} | {} | {} |",
            r.work,
            r.unit,
            opt(r.gflops, 0),
            opt(r.gflops.map(|g| 100.0 * g / ceiling), 0),
            opt(r.rss_mib, 0),
            opt(r.original, digits),
            opt(r.original.map(|o| r.fmv / o), 2),
        );
    }
    Ok(())
}
