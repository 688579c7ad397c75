//! `cargo xtask fuzz [TARGET...] [--minutes N]`: runs the cargo-fuzz targets of `fuzz/`, each
//! for N minutes, from the seeds in `fuzz/seeds/TARGET` and the corpus grown by earlier runs in
//! `target/fuzz-corpus/TARGET`. Needs a nightly toolchain and cargo-fuzz
//! (`rustup toolchain install nightly`, `cargo install cargo-fuzz`). A crash leaves its input
//! in `fuzz/artifacts/TARGET/` and fails the task.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The targets, in `fuzz/Cargo.toml`.
pub const TARGETS: [&str; 4] = ["checkpoint", "pickle", "decode", "json"];

/// Runs `targets` (all when empty) for `minutes` each.
pub fn run(targets: &[String], minutes: u64) -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask has no parent folder")?;
    for t in targets {
        if !TARGETS.contains(&t.as_str()) {
            bail!(
                "no fuzz target `{t}`; the targets are {}",
                TARGETS.join(", ")
            );
        }
    }
    let chosen: Vec<&str> = if targets.is_empty() {
        TARGETS.to_vec()
    } else {
        targets.iter().map(String::as_str).collect()
    };
    let probe = Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        bail!(
            "cargo-fuzz on a nightly toolchain is needed: `rustup toolchain install nightly` \
             and `cargo install cargo-fuzz`"
        );
    }
    let fuzz = root.join("fuzz");
    for target in chosen {
        let corpus = root.join("target/fuzz-corpus").join(target);
        std::fs::create_dir_all(&corpus)
            .with_context(|| format!("cannot create {}", corpus.display()))?;
        let seeds = fuzz.join("seeds").join(target);
        eprintln!("fuzzing {target} for {minutes} min");
        let status = Command::new("cargo")
            .current_dir(&fuzz)
            .args(["+nightly", "fuzz", "run", "-O", target])
            .arg(&corpus)
            .arg(&seeds)
            .arg("--")
            .arg(format!("-max_total_time={}", minutes * 60))
            .args(["-timeout=20", "-rss_limit_mb=2048", "-max_len=262144"])
            .arg("-print_final_stats=1")
            .status()
            .context("cannot run cargo fuzz")?;
        if !status.success() {
            bail!(
                "fuzz target {target} failed; the input is in fuzz/artifacts/{target}/ (replay it \
                 with `cargo +nightly fuzz run {target} FILE` in fuzz/)"
            );
        }
    }
    Ok(())
}
