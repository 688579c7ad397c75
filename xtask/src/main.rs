//! `cargo xtask <task>`: project automation that is not part of the product.
//!
//! - `fetch NAME... [--pin]`: pretrained weights from the Hugging Face Hub into `models/`.
//! - `gallery [--check]`: `docs/gallery/` from the demo report (or a comparison with it).
//! - `train-demo [--only resnet|vgg] [--steps N]`: the embedded demo networks.
//! - `bench [forward] [patterns] [rank] [--runs N] [--images N] [--full] [--torch PYTHON]
//!   [--device cpu|cuda] [--fmv PATH]`: one table of fmv's speed and memory (full-size ResNet50
//!   and VGG16 forward passes next to a matmul ceiling measured in the same run,
//!   activation-maximisation steps and compat runs, `fmv rank` as a whole process with its peak
//!   RSS), with the original (PyTorch) timed on the same work when `--torch` names a Python that
//!   has it. `--device cuda` (built with `--features cuda`) benchmarks the GPU and compares its
//!   results with the CPU's. Not a test; CI does not run it.

mod bench;
mod fetch;
mod gallery;
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
            let only = args[1..]
                .iter()
                .take_while(|a| !a.starts_with("--"))
                .cloned()
                .collect();
            let number = |name: &str, default: usize| -> anyhow::Result<usize> {
                Ok(flag(name)
                    .map(|s| s.parse())
                    .transpose()?
                    .unwrap_or(default))
            };
            bench::run(&bench::Options {
                runs: number("--runs", 5)?,
                images: number("--images", 240)?,
                full: args.iter().any(|a| a == "--full"),
                torch: flag("--torch").map(Into::into),
                only,
                device: flag("--device").unwrap_or_else(|| "cpu".into()),
                fmv: flag("--fmv").map(Into::into),
            })
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
                "usage: cargo xtask fetch NAME... [--pin] | gallery [--check] | train-demo [--only resnet|vgg] [--steps N] | bench [forward] [patterns] [rank] [--runs N] [--images N] [--full] [--torch PYTHON] [--device cpu|cuda] [--fmv PATH]"
            );
            std::process::exit(2);
        }
    }
}
