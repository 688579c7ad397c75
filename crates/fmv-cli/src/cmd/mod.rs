//! One module per subcommand.

pub mod ablate;
pub mod activations;
pub mod class_sums;
pub mod exemplars;
pub mod layers;
pub mod overlay;
pub mod patterns;
pub mod rank;
pub mod report;
