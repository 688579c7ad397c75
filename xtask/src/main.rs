//! `cargo xtask <task>`: project automation that is not part of the product.
//!
//! - `fetch NAME... [--pin]`: pretrained weights from the Hugging Face Hub into `models/`.
//! - `gallery [--check]`: `docs/gallery/` from the demo report (or a comparison with it).
//! - `train-demo [--only resnet|vgg] [--steps N]`: the embedded demo networks.
//! - `bench [forward] [patterns] [robust] [rank] [exemplars] [--runs N] [--images N] [--full] [--torch PYTHON]
//!   [--device cpu|cuda] [--fmv PATH]`: one table of fmv's speed and memory (full-size ResNet50
//!   and VGG16 forward passes next to a matmul ceiling measured in the same run,
//!   activation-maximisation steps and compat runs, `fmv rank` as a whole process with its peak
//!   RSS), with the original (PyTorch) timed on the same work when `--torch` names a Python that
//!   has it. `--device cuda` (built with `--features cuda`) benchmarks the GPU and compares its
//!   results with the CPU's. Not a test; CI does not run it.
//! - `fuzz [TARGET...] [--minutes N]`: the cargo-fuzz targets of `fuzz/` (nightly), N minutes
//!   each.
//! - `real [--dir DIR] [--fmv PATH] [--steps N]`: fmv on the real trained VGG16s that
//!   `../shared/tools/real_weights/get.sh DIR` writes, against torch's goldens, and every command
//!   on the fine-tuned one; skipped (successfully) when the weights are absent.

mod bench;
mod fetch;
mod fuzz;
mod gallery;
mod real;
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

/// `cargo xtask`'s tasks and their options.
#[derive(clap::Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Project automation: fetch, gallery, train-demo, bench, fuzz, real"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(clap::Subcommand)]
enum Task {
    /// Pretrained weights from the Hugging Face Hub into `models/` (names in
    /// `models/manifest.json`).
    Fetch {
        /// The models to fetch.
        #[arg(value_name = "NAME")]
        names: Vec<String>,
        /// Write each file's sha256 into the manifest where it has none.
        #[arg(long)]
        pin: bool,
    },
    /// `docs/gallery/` from the demo report.
    Gallery {
        /// Compare with `docs/gallery/` instead of writing it.
        #[arg(long)]
        check: bool,
    },
    /// The embedded demo networks, into `models/demo/`.
    TrainDemo {
        /// Train only this network.
        #[arg(long, value_parser = ["resnet", "vgg"])]
        only: Option<String>,
        /// Optimisation steps.
        #[arg(long, default_value_t = 200)]
        steps: usize,
    },
    /// One table of fmv's speed and memory, next to the original's with `--torch`.
    Bench {
        /// Only these parts (all when none is named).
        #[arg(value_parser = ["forward", "patterns", "robust", "rank", "exemplars"], value_name = "PART")]
        parts: Vec<String>,
        /// Timed repetitions of each forward pass.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Images in the generated ranking folder.
        #[arg(long, default_value_t = 240)]
        images: usize,
        /// Also the default 20-scale patterns schedule and ranking at 4× the images.
        #[arg(long)]
        full: bool,
        /// A Python with torch, torchvision, opencv and safetensors, to time the original.
        #[arg(long, value_name = "PYTHON")]
        torch: Option<std::path::PathBuf>,
        /// Where fmv runs: `cpu`, `cuda` or `cuda:N`.
        #[arg(long, default_value = "cpu")]
        device: String,
        /// An `fmv` binary to run instead of building one.
        #[arg(long, value_name = "PATH")]
        fmv: Option<std::path::PathBuf>,
    },
    /// The fuzz targets of `fuzz/` (needs nightly and `cargo install cargo-fuzz`).
    Fuzz {
        /// Only these targets (all when none is named): checkpoint, pickle, decode, json.
        #[arg(value_name = "TARGET")]
        targets: Vec<String>,
        /// Minutes per target.
        #[arg(long, default_value_t = 5)]
        minutes: u64,
    },
    /// fmv on a real trained VGG16 (when its weights are present): parity with torch, and
    /// every command.
    Real {
        /// Where `get.sh` wrote the weights.
        #[arg(long, default_value = "real-weights", value_name = "DIR")]
        dir: std::path::PathBuf,
        /// An `fmv` binary to run instead of building one.
        #[arg(long, value_name = "PATH")]
        fmv: Option<std::path::PathBuf>,
        /// Optimisation steps of the patterns (robust) in `patterns` and `report`.
        #[arg(long, default_value_t = 16)]
        steps: usize,
    },
}

fn main() -> std::process::ExitCode {
    let cli = <Cli as clap::Parser>::parse();
    match run(cli.task) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(task: Task) -> anyhow::Result<()> {
    match task {
        Task::Bench {
            parts,
            runs,
            images,
            full,
            torch,
            device,
            fmv,
        } => bench::run(&bench::Options {
            runs,
            images,
            full,
            torch,
            parts,
            device,
            fmv,
        }),
        Task::Fetch { names, pin } => fetch::run(&names, pin),
        Task::Fuzz { targets, minutes } => fuzz::run(&targets, minutes),
        Task::Gallery { check } => gallery::run(check),
        Task::Real { dir, fmv, steps } => real::run(&dir, fmv, steps),
        Task::TrainDemo { only, steps } => train_demo::run(steps, only.as_deref()),
    }
}
