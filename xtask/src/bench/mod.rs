//! `cargo xtask bench`: one table of fmv's speed and memory on this machine, next to the
//! original (PyTorch) doing the same work in the same run when `--torch PYTHON` names a Python
//! with torch, torchvision, opencv and safetensors.
//!
//! Rows: the 2048³ matmul ceiling; ResNet50 and VGG16 forward passes (batch 1 and 8, ms per
//! image and GFLOP/s); an activation-maximisation step at 224 and 448 px and whole compat runs
//! (12 scales, for one map and for two; with `--full` also the default 20 scales up to 986 px),
//! each with the GFLOP/s of its convolutions' work; `fmv rank` as a whole
//! process over a generated folder of JPEGs (ms per image and peak RSS; with `--full` also at
//! four times the images, to show memory flat in their number); robust activation-maximisation
//! steps at 224 px, wall-clock and CPU time per step; `fmv exemplars --all` over the
//! same folders at one and four times the images (peak RSS flat). Seeded random full-size
//! weights, written once to `target/bench/` so that both sides load the same file.
//!
//! `--device cuda` (a build with the `cuda` feature) runs fmv's side on the GPU and the
//! original's too (its default, `use_cuda=True`), and adds rows that compare the GPU's results
//! with the CPU's: the forward passes' maps and logits, and `fmv rank`'s output. The header
//! says whether the convolutions run on cuDNN (the `cudnn` feature) or on candle's im2col.
//! `--fmv PATH` takes that `fmv` binary instead of building one (for a machine without a Rust
//! toolchain).

mod exemplars;
mod forward;
mod original;
mod patterns;
mod rank;
mod robust;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use candle_core::Device;
use fmv_models::Arch;

pub use forward::{random_model, random_tensors, resnet50, vgg16};
use original::Original;

/// The algorithms `FMV_CONV` and `FMV_INPUT_GRAD` name (the defaults where unset), for the
/// in-process rows; the `fmv` processes the benchmark starts read the same variables.
pub(crate) fn algorithms_from_env() -> Result<fmv_models::Algorithms> {
    let var = |name: &str| std::env::var(name).ok();
    fmv_models::Algorithms::from_names(var("FMV_CONV").as_deref(), var("FMV_INPUT_GRAD").as_deref())
        .context("FMV_CONV or FMV_INPUT_GRAD")
}

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
    pub parts: Vec<String>,
    /// Where fmv runs: `cpu`, `cuda` or `cuda:N` (as `fmv --device` takes it).
    pub device: String,
    /// An `fmv` binary to run instead of building `target/release/fmv`.
    pub fmv: Option<PathBuf>,
}

/// What every part of the benchmark needs.
pub(crate) struct Setup {
    /// Timed repetitions of each forward pass.
    pub runs: usize,
    /// Where fmv runs.
    pub device: Device,
    /// The device as `fmv --device` takes it.
    pub device_name: String,
    /// The `fmv` binary.
    pub fmv: PathBuf,
    /// The original, when timed.
    pub original: Option<Original>,
}

impl Setup {
    /// Waits until the device has finished its queued work (a no-op on the CPU).
    pub fn sync(&self) -> Result<()> {
        Ok(self.device.synchronize()?)
    }

    /// `fmv SUBCOMMAND --device` on the benchmark's device.
    pub fn fmv(&self, subcommand: &str) -> Command {
        self.fmv_on(subcommand, &self.device_name)
    }

    /// `fmv SUBCOMMAND --device DEVICE`.
    pub fn fmv_on(&self, subcommand: &str, device: &str) -> Command {
        let mut cmd = Command::new(&self.fmv);
        cmd.args([subcommand, "--device", device]);
        cmd
    }
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

/// Seconds per step of a timed loop: wall-clock, and CPU (user + system, all threads of the
/// process). On a host that steals time or is slow to wake a sleeping thread, the CPU time is
/// the steadier reading of the work done; the wall-clock time is what a user waits.
#[derive(Debug, Clone, Copy)]
pub struct PerStep {
    pub wall: f64,
    pub cpu: f64,
}

/// The CPU time (user + system, all threads) this process has used so far, in seconds.
pub(crate) fn cpu_seconds() -> Result<f64> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes one `rusage` through the pointer, which points at one.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) } != 0 {
        bail!("getrusage failed: {}", std::io::Error::last_os_error());
    }
    // SAFETY: getrusage returned 0, so it wrote the whole struct (which started zeroed).
    let usage = unsafe { usage.assume_init() };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    Ok(secs(usage.ru_utime) + secs(usage.ru_stime))
}

/// Runs a command and returns its wall time in seconds and its own peak RSS in MiB: the
/// largest `VmHWM` of `/proc/PID/status`, read every 20 ms. (`wait4`'s `ru_maxrss` would count
/// the pages the child shared with this process between fork and exec: the benchmark's own
/// gigabytes after the pattern runs.)
pub(crate) fn run_measured(cmd: &mut Command) -> Result<(f64, f64)> {
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
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
        bail!("{cmd:?} failed ({status})");
    }
    Ok((secs, peak_kib as f64 / 1024.0))
}

/// `target/release/fmv`, built first (release, as users run it).
pub(crate) fn fmv_binary() -> Result<PathBuf> {
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
    // As `fmv` starts. SAFETY: xtask's main thread, before the benchmark starts any thread or
    // candle op.
    fmv_core::process::tune_glibc_malloc();
    unsafe { fmv_core::process::disable_candle_thread_pool() };
    let wants = |part: &str| opts.parts.is_empty() || opts.parts.iter().any(|p| p == part);
    let device = fmv_models::parse_device(&opts.device)?;
    let threads = candle_core::utils::get_num_threads();
    let original = opts
        .torch
        .as_deref()
        .map(|python| Original::new(python, &opts.device, threads))
        .transpose()?;
    let fmv = match &opts.fmv {
        Some(path) => path.clone(),
        None if wants("patterns") || wants("rank") => fmv_binary()?,
        None => PathBuf::from("fmv"),
    };
    let setup = Setup {
        runs: opts.runs,
        device,
        device_name: opts.device.clone(),
        fmv,
        original,
    };
    let place = match fmv_kernels::gpu_convolution(setup.device.location()) {
        None => "the CPU".to_string(),
        Some(kernels) => format!(
            "`{}` (convolutions: {kernels}, f32; CPU rows: {threads} threads)",
            opts.device
        ),
    };
    println!(
        "fmv {} on {place}, f32; forward passes: minimum of {} runs after a warm-up; the \
         original: PyTorch {}",
        env!("CARGO_PKG_VERSION"),
        opts.runs,
        setup
            .original
            .as_ref()
            .map_or("not run (give --torch PYTHON)".into(), |o| format!(
                "{} on {}",
                o.version, opts.device
            )),
    );
    let (ceiling, ceiling_row) = forward::ceiling(&setup)?;
    let table = Table::new(ceiling);
    table.print(&ceiling_row);
    if wants("forward") {
        forward::rows(&setup, &table)?;
    }
    if wants("patterns") {
        patterns::rows(&setup, opts.full, &table)?;
        if setup.device.is_cpu() {
            table.print(&patterns::memory_row(&setup)?);
        }
    }
    if wants("robust") {
        robust::rows(&setup, &table)?;
    }
    if wants("rank") {
        rank::rows(&setup, opts.images, opts.full, &table)?;
    }
    if wants("exemplars") {
        exemplars::rows(&setup, opts.images, &table)?;
    }
    Ok(())
}

/// The table, printed a row at a time as each is measured (so that a run cut short keeps
/// what it measured).
pub(crate) struct Table {
    /// The matmul ceiling's GFLOP/s, which "% of ceiling" divides by.
    ceiling: f64,
}

impl Table {
    /// Prints the header.
    fn new(ceiling: f64) -> Self {
        println!();
        println!(
            "| work | unit | fmv | GFLOP/s | % of ceiling | peak RSS MiB | original | fmv / original |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        Table { ceiling }
    }

    /// Prints one row.
    pub fn print(&self, r: &Row) {
        let opt = |v: Option<f64>, digits: usize| v.map_or("".into(), |v| format!("{v:.digits$}"));
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
            opt(r.gflops.map(|g| 100.0 * g / self.ceiling), 0),
            opt(r.rss_mib, 0),
            opt(r.original, digits),
            opt(r.original.map(|o| r.fmv / o), 2),
        );
    }
}
