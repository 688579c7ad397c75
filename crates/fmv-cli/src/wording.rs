//! The libraries' errors in the command line's words: each setting a library names
//! ([`fmv::core::Field`], [`fmv::report::ReportField`]) is the flag that sets it, and the few
//! fixes a library can only describe become the flags to use.

use fmv::core::{Error as CoreError, Field};
use fmv::models::Error as ModelError;
use fmv::report::Error as ReportError;

/// The flag that sets a library's setting. (`rank` words the one setting no flag sets, the
/// state a run resumes from, itself.)
pub fn flag(field: Field) -> String {
    match field {
        Field::Filters => "--filter".into(),
        Field::Preset => "--preprocess".into(),
        Field::Parts => "--merge".into(),
        Field::K => "-k".into(),
        Field::Maps => "--filters".into(),
        other => format!("--{}", other.name().replace('_', "-")),
    }
}

/// The message of one error of a chain, in the command line's words.
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    if let Some(e) = error.downcast_ref::<CoreError>() {
        return core(e);
    }
    if let Some(e) = error.downcast_ref::<ModelError>() {
        return model(e);
    }
    if let Some(e) = error.downcast_ref::<ReportError>() {
        return report(e);
    }
    if let Some(e) = error.downcast_ref::<fmv::Error>() {
        return match e {
            fmv::Error::Model(e) => model(e),
            fmv::Error::Analysis(e) => core(e),
            fmv::Error::Report(e) => report(e),
            other => other.to_string(),
        };
    }
    error.to_string()
}

fn core(e: &CoreError) -> String {
    match e {
        CoreError::Model(m) => model(m),
        other => other.display_with(&flag).to_string(),
    }
}

fn model(e: &ModelError) -> String {
    match e {
        ModelError::ArchMismatch {
            path,
            requested,
            found,
        } => format!(
            "{} holds a {found}, not a {requested}; drop `--arch` or pass `--arch {found}`",
            path.display()
        ),
        ModelError::UnusableHead { stated: None, .. } => {
            format!("{e}; state a layout with --head LAYOUT")
        }
        ModelError::BadCheckpoint { .. } => e
            .to_string()
            .replace("as the state key", "with --state-key"),
        other => other.to_string(),
    }
}

fn report(e: &ReportError) -> String {
    match e {
        ReportError::Analysis(e) => core(e),
        ReportError::ClassesDiffer { .. } => format!("{e} (pick shared ones with --classes)"),
        ReportError::Zero { field } => format!(
            "invalid --{}: must be at least 1",
            field.name().replace('_', "-")
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every setting's flag is one the command line has.
    #[test]
    fn every_field_names_a_flag_of_the_cli() {
        use clap::CommandFactory;
        let cli = crate::Cli::command();
        let flags: std::collections::HashSet<String> = cli
            .get_subcommands()
            .flat_map(|c| c.get_arguments())
            .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
            .collect();
        for field in [
            Field::Filters,
            Field::Lr,
            Field::OptSteps,
            Field::UpscalingSteps,
            Field::UpscalingFactor,
            Field::InitImage,
            Field::InitSize,
            Field::Steps,
            Field::Top,
            Field::Preset,
            Field::Size,
            Field::Mean,
            Field::Std,
            Field::BatchSize,
            Field::NEachImg,
            Field::NEachClass,
            Field::Shard,
            Field::Classes,
            Field::Parts,
            Field::Strict,
            Field::Layer,
            Field::Maps,
            Field::RandomSets,
            Field::Labels,
        ] {
            assert!(flags.contains(&flag(field)), "{field:?}: {}", flag(field));
        }
    }
}
