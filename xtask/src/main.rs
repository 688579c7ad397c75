//! `cargo xtask <task>`: project automation that is not part of the product.
//!
//! - `fetch NAME... [--pin]`: pretrained weights from the Hugging Face Hub into `models/`.
//! - `gallery [--check]`: `docs/gallery/` from the demo report (or a comparison with it).
//! - `train-demo [--only resnet|vgg] [--steps N]`: the embedded demo networks.
//! - `bench [forward|patterns|rank] [--runs N] [--sizes 100,2000] [--full]`: forward-pass speed
//!   of full-size ResNet50 and VGG16 (seeded random weights) next to a large-matmul ceiling
//!   measured in the same run; activation-maximisation step time and whole compat runs (12
//!   scales, and with `--full` the default 20 up to 986 px); `fmv rank`'s throughput and peak
//!   memory on generated folders. Not a test; CI does not run it.

mod bench;
mod fetch;
mod gallery;
mod patterns_bench;
mod rank_memory;
mod train_demo;

/// Lower-case hex sha256 of a file, read in a stream.
fn sha256_file(path: &std::path::Path) -> anyhow::Result<String> {
    use anyhow::Context;
    use sha2::Digest;
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(format!("{:x}", h.finalize()))
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    match args.first().map(String::as_str) {
        Some("bench") => {
            let what = args
                .get(1)
                .map(String::as_str)
                .filter(|a| !a.starts_with("--"))
                .unwrap_or("all");
            let runs: usize = flag("--runs").map(|s| s.parse()).transpose()?.unwrap_or(5);
            let sizes: Vec<usize> = flag("--sizes")
                .unwrap_or_else(|| "100,2000".into())
                .split(',')
                .map(|s| s.parse())
                .collect::<Result<_, _>>()?;
            if matches!(what, "all" | "forward") {
                bench::run(runs)?;
            }
            if matches!(what, "all" | "patterns") {
                patterns_bench::run_all(args.iter().any(|a| a == "--full"))?;
            }
            if matches!(what, "all" | "rank") {
                rank_memory::run(&sizes)?;
            }
            Ok(())
        }
        Some("fetch") => {
            let names: Vec<String> = args[1..]
                .iter()
                .filter(|a| !a.starts_with("--"))
                .cloned()
                .collect();
            fetch::run(&names, args.iter().any(|a| a == "--pin"))
        }
        Some("gallery") => gallery::run(args.iter().any(|a| a == "--check")),
        Some("train-demo") => {
            let steps: usize = flag("--steps")
                .map(|s| s.parse())
                .transpose()?
                .unwrap_or(200);
            train_demo::run(steps, flag("--only").as_deref())
        }
        _ => {
            eprintln!(
                "usage: cargo xtask fetch NAME... [--pin] | gallery [--check] | train-demo [--only resnet|vgg] [--steps N] | bench [forward|patterns|rank] [--runs N] [--sizes 100,2000] [--full]"
            );
            std::process::exit(2);
        }
    }
}
