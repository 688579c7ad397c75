//! `cargo xtask bench rank`: throughput and peak memory of `fmv rank` on generated folders of
//! different sizes, to show that memory stays flat in the number of images.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A two-class ImageFolder of `n` images (hard links to the dsA training images, cycled).
fn make_folder(n: usize) -> Result<PathBuf> {
    let src = root().join("testdata/reference/data/dsA/train");
    let dir = std::env::temp_dir().join(format!("fmv-bench-rank-{n}"));
    let _ = std::fs::remove_dir_all(&dir);
    for class in ["cat", "coffee"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(src.join(class))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        files.sort();
        let out = dir.join(class);
        std::fs::create_dir_all(&out)?;
        for i in 0..n / 2 {
            let f = &files[i % files.len()];
            let ext = f.extension().unwrap_or_default().to_string_lossy();
            let target = out.join(format!("{class}_{i:05}.{ext}"));
            if std::fs::hard_link(f, &target).is_err() {
                std::fs::copy(f, &target)?;
            }
        }
    }
    Ok(dir)
}

/// Runs a command and returns its wall time in seconds and its own peak RSS in MiB.
fn run_measured(cmd: &mut Command) -> Result<(f64, f64)> {
    let start = Instant::now();
    let child = cmd.spawn().context("cannot start fmv")?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for this child, which we reap here
    // instead of through `Child::wait`.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let secs = start.elapsed().as_secs_f64();
    if r != pid || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("fmv rank failed (status {status})");
    }
    Ok((secs, usage.ru_maxrss as f64 / 1024.0))
}

pub fn run(sizes: &[usize]) -> Result<()> {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "--bin", "fmv"])
        .current_dir(root())
        .status()?;
    if !status.success() {
        bail!("cannot build fmv");
    }
    let fmv = root().join("target/release/fmv");
    let weights = root().join("testdata/reference/weights/vgg16_small_seed1.safetensors");
    println!(
        "\n`fmv rank` on generated folders (small VGG16 of the tests, layer 12, batch 8, CPU):\n"
    );
    println!("| images | wall s | ms/image | peak RSS MiB |");
    println!("|---|---|---|---|");
    for &n in sizes {
        let dir = make_folder(n)?;
        let mut cmd = Command::new(&fmv);
        cmd.args(["rank", "--weights"])
            .arg(&weights)
            .args(["--layer", "12", "--train-dir"])
            .arg(&dir)
            .args(["--json"])
            .stdout(std::process::Stdio::null());
        let (secs, rss) = run_measured(&mut cmd)?;
        println!(
            "| {n} | {secs:.1} | {:.1} | {rss:.0} |",
            secs * 1e3 / n as f64
        );
        std::fs::remove_dir_all(&dir).ok();
    }
    Ok(())
}
