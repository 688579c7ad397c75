//! The original's side of the benchmark: `xtask/scripts/original.py` run by a Python that has
//! torch, torchvision, opencv and safetensors, on the same weights files and images.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use fmv_models::Arch;

use super::{PerStep, root, run_measured, weights_file};

/// A Python able to run the original's code paths.
pub struct Original {
    python: PathBuf,
    /// `cpu` or `cuda…`, as `FMV_BENCH_DEVICE` gives it to the script.
    device: String,
    /// torch's CPU threads: as many as fmv uses.
    threads: usize,
    /// `torch.__version__`.
    pub version: String,
}

impl Original {
    /// The original on `device` (`cpu` or `cuda`/`cuda:N`) with `threads` CPU threads.
    pub fn new(python: &Path, device: &str, threads: usize) -> Result<Self> {
        let out = Command::new(python)
            .args([
                "-c",
                "import torch, torchvision, cv2, safetensors; print(torch.__version__)",
            ])
            .output()
            .with_context(|| format!("cannot run {}", python.display()))?;
        if !out.status.success() {
            bail!(
                "{} lacks torch, torchvision, opencv or safetensors: {}",
                python.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(Original {
            python: python.to_owned(),
            device: device.to_owned(),
            threads,
            version: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        })
    }

    /// The script in one mode, on the weights file of `arch` and `seed`.
    fn command(
        &self,
        mode: &str,
        arch: &Arch,
        seed: u64,
        layer: i64,
        args: &[String],
    ) -> Result<Command> {
        let mut cmd = Command::new(&self.python);
        cmd.env("FMV_BENCH_DEVICE", &self.device)
            .env("FMV_BENCH_THREADS", self.threads.to_string())
            .arg(root().join("xtask/scripts/original.py"))
            .arg(mode)
            .arg(weights_file(arch, seed)?)
            .arg(arch.name())
            .arg(layer.to_string())
            .args(args);
        Ok(cmd)
    }

    /// Runs one mode of the script and returns its `result`.
    fn call(
        &self,
        mode: &str,
        arch: &Arch,
        seed: u64,
        layer: i64,
        args: &[String],
    ) -> Result<serde_json::Value> {
        let out = self
            .command(mode, arch, seed, layer, args)?
            .output()
            .context("cannot run original.py")?;
        if !out.status.success() {
            bail!(
                "original.py {mode} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("original.py {mode} printed no JSON"))?;
        Ok(v["result"].clone())
    }

    fn number(
        &self,
        mode: &str,
        arch: &Arch,
        seed: u64,
        layer: i64,
        args: &[String],
    ) -> Result<f64> {
        self.call(mode, arch, seed, layer, args)?
            .as_f64()
            .with_context(|| format!("original.py {mode} gave no number"))
    }

    /// ms per image of a plain forward pass at batch 1 and 8.
    pub fn forward(&self, arch: &Arch, seed: u64, runs: usize) -> Result<[f64; 2]> {
        let v = self.call("forward", arch, seed, -2, &[runs.to_string()])?;
        match (v[0].as_f64(), v[1].as_f64()) {
            (Some(a), Some(b)) => Ok([a, b]),
            _ => bail!("original.py forward gave {v}"),
        }
    }

    /// Seconds of `find_unique_filters` over a folder.
    pub fn rank(&self, arch: &Arch, seed: u64, layer: i64, dir: &Path) -> Result<f64> {
        self.number("rank", arch, seed, layer, &[dir.display().to_string()])
    }

    /// Seconds per `visualize_patterns` step at `size` px.
    pub fn step(&self, arch: &Arch, seed: u64, filter: usize, size: usize) -> Result<f64> {
        let args = [filter.to_string(), size.to_string(), "5".to_string()];
        self.number("step", arch, seed, -2, &args)
    }

    /// Wall-clock and CPU seconds (all threads) per step of PyTorch's side of a robust step:
    /// Adam on a batch of `size` px images, one per filter, forward to the `layer`-th hooked
    /// layer and back (10 steps after 3 warm-up steps).
    pub fn robust_step(
        &self,
        arch: &Arch,
        layer: i64,
        filters: &[usize],
        size: usize,
    ) -> Result<PerStep> {
        let list: Vec<String> = filters.iter().map(usize::to_string).collect();
        let args = [list.join(","), size.to_string(), "10".to_string()];
        let v = self.call("robust_step", arch, 1, layer, &args)?;
        match (v[0].as_f64(), v[1].as_f64()) {
            (Some(wall), Some(cpu)) => Ok(PerStep { wall, cpu }),
            _ => bail!("original.py robust_step gave {v}"),
        }
    }

    /// Peak RSS in MiB of a Python process taking two `visualize_patterns` steps at `size` px.
    pub fn step_rss(&self, arch: &Arch, seed: u64, filter: usize, size: usize) -> Result<f64> {
        let args = [filter.to_string(), size.to_string(), "2".to_string()];
        let mut cmd = self.command("step", arch, seed, -2, &args)?;
        cmd.stdout(std::process::Stdio::null());
        Ok(run_measured(&mut cmd)?.1)
    }

    /// Seconds of `visualize_patterns` with `scales` upscaling steps, called once per filter.
    pub fn patterns(
        &self,
        arch: &Arch,
        seed: u64,
        filters: &[usize],
        scales: usize,
    ) -> Result<f64> {
        let filters: Vec<String> = filters.iter().map(usize::to_string).collect();
        self.number(
            "patterns",
            arch,
            seed,
            -2,
            &[filters.join(","), scales.to_string()],
        )
    }
}
