//! `fmv`: see what the feature maps of a CNN image classifier respond to.

mod args;
mod cmd;
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
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Layers(a) => cmd::layers::run(a),
        Command::Activations(a) => cmd::activations::run(a),
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
