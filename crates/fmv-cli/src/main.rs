//! `fmv`: see what the feature maps of a CNN image classifier respond to.
//!
//! The only crate that speaks in `--flags`: it parses arguments (clap), runs the libraries,
//! words their errors with the flags that set each setting (`wording`), shows progress and
//! warnings (`session`), and writes files atomically (`output`).

mod args;
mod cmd;
mod guard;
mod output;
mod resume;
mod session;
mod top_maps;
mod wording;

use clap::{Parser, Subcommand};

/// See what the feature maps of a CNN image classifier (ResNet, VGG) respond to.
#[derive(Debug, Parser)]
#[command(name = "fmv", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the layers (taps) of a network, with channel counts and map sizes at 224×224.
    Layers(cmd::layers::Args),
    /// Each channel's mean activation at one layer, and the most active channels, per image.
    Activations(cmd::activations::Args),
    /// Per class of a training ImageFolder, the feature maps unique to it.
    Rank(cmd::rank::Args),
    /// One map, or several summed, overlaid on many images (one PNG each), with their means.
    Overlay(cmd::overlay::Args),
    /// Per test image, the summed activation of each class's maps, and how well they separate.
    ClassSums(cmd::class_sums::Args),
    /// Draw what a feature map responds to: an image maximising its activation.
    Patterns(cmd::patterns::Args),
    /// For each map, the real images where it is most active, and where in them.
    Exemplars(cmd::exemplars::Args),
    /// Zero each class's maps and watch its logit, against random sets of as many maps.
    Ablate(cmd::ablate::Args),
    /// The whole pipeline as one static HTML report; without arguments, on the embedded demo.
    Report(cmd::report::Args),
}

/// How a command ended, when it did not fail.
pub enum Outcome {
    /// Everything was done.
    Done,
    /// Ctrl-C stopped it; what was done is kept (exit code 130).
    Interrupted,
}

fn main() -> std::process::ExitCode {
    fmv::core::process::tune_glibc_malloc();
    // SAFETY: the first thing `main` does after the allocator settings; no other thread exists
    // yet.
    unsafe { fmv::core::process::disable_candle_thread_pool() };
    let cli = Cli::parse();
    session::stop_on_ctrl_c();
    let result = match cli.command {
        Command::Layers(a) => cmd::layers::run(a),
        Command::Activations(a) => cmd::activations::run(a),
        Command::Rank(a) => cmd::rank::run(a),
        Command::Overlay(a) => cmd::overlay::run(a),
        Command::ClassSums(a) => cmd::class_sums::run(a),
        Command::Patterns(a) => cmd::patterns::run(a),
        Command::Exemplars(a) => cmd::exemplars::run(a),
        Command::Ablate(a) => cmd::ablate::run(a),
        Command::Report(a) => cmd::report::run(a),
    };
    match result {
        Ok(Outcome::Done) => std::process::ExitCode::SUCCESS,
        Ok(Outcome::Interrupted) => std::process::ExitCode::from(130),
        Err(e) if is_stop(&e) => {
            eprintln!("interrupted");
            std::process::ExitCode::from(130)
        }
        Err(e) => {
            let mut chain = e.chain();
            if let Some(top) = chain.next() {
                eprintln!("error: {}", wording::describe(top));
            }
            for cause in chain {
                eprintln!("  caused by: {}", wording::describe(cause));
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// Whether an error is a run stopped on request (Ctrl-C).
fn is_stop(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(c.downcast_ref(), Some(fmv::core::Error::Stopped))
            || matches!(
                c.downcast_ref(),
                Some(fmv::report::Error::Analysis(fmv::core::Error::Stopped))
            )
    })
}
