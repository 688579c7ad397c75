//! One module per subcommand.

pub mod activations;
pub mod class_sums;
pub mod layers;
pub mod overlay;
pub mod patterns;
pub mod rank;
pub mod report;
