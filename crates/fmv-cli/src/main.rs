//! `fmv`: see what the feature maps of a CNN image classifier respond to.

mod args;
mod cmd;
mod output;
mod progress;

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
    /// The whole pipeline as one static HTML report; without arguments, on the embedded demo.
    Report(cmd::report::Args),
}

fn main() -> std::process::ExitCode {
    fmv::core::tune_glibc_malloc();
    // SAFETY: the first thing `main` does; no other thread exists yet.
    unsafe { fmv::core::disable_candle_thread_pool() };
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Layers(a) => cmd::layers::run(a),
        Command::Activations(a) => cmd::activations::run(a),
        Command::Rank(a) => cmd::rank::run(a),
        Command::Overlay(a) => cmd::overlay::run(a),
        Command::ClassSums(a) => cmd::class_sums::run(a),
        Command::Patterns(a) => cmd::patterns::run(a),
        Command::Report(a) => cmd::report::run(a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = e.source();
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            std::process::ExitCode::FAILURE
        }
    }
}
