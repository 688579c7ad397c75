//! What the commands that save their state and merge shards share (`rank`, `exemplars`): the
//! observer that writes every checkpoint, how a run that may be stopped or resumed ends,
//! reading a saved state back, and the merge's warnings.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use fmv::core::files::{MAX_JSON_BYTES, read_limited};
use fmv::core::{Error as CoreError, Field, Observer, Problem};
use fmv::{Event, Skipped};
use serde::de::DeserializeOwned;

use crate::session::Session;

/// Writes `event`'s state to the file if it is a checkpoint (`Some` of the write's result),
/// else `None`.
pub type Checkpoint = fn(&Event<'_>, &Path) -> Option<Result<()>>;

/// The run's observer: the session's bar and warnings, and every checkpoint written to the
/// state file (a failed write stops the run and is reported).
pub struct Saving<'a> {
    /// The progress bar and warnings.
    pub session: Session,
    file: Option<&'a Path>,
    checkpoint: Checkpoint,
    /// The first write that failed.
    pub failed: Option<anyhow::Error>,
}

impl<'a> Saving<'a> {
    /// Saves the checkpoints `checkpoint` recognises into `file`, if any.
    pub fn new(session: Session, file: Option<&'a Path>, checkpoint: Checkpoint) -> Self {
        Saving {
            session,
            file,
            checkpoint,
            failed: None,
        }
    }
}

impl Observer for Saving<'_> {
    fn on_event(&mut self, event: &Event<'_>) {
        if let Some(file) = self.file
            && self.failed.is_none()
            && let Some(Err(e)) = (self.checkpoint)(event, file)
        {
            self.failed = Some(e);
        }
        self.session.on_event(event);
    }

    fn should_stop(&mut self) -> bool {
        self.failed.is_some() || self.session.should_stop()
    }
}

/// Reads a saved state (a shard's part or an unfinished run's), bounded in size; `what` says
/// what the file should have been.
pub fn read_state<T: DeserializeOwned>(path: &Path, what: &str) -> Result<T> {
    let bytes = read_limited(path, MAX_JSON_BYTES)?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} is not {what}", path.display()))
}

/// Warns of the shards a merge lacks and of the files its parts skipped.
pub fn warn_of_merge(shards: &[usize], count: usize, skipped: &[Skipped]) {
    let missing: Vec<String> = (0..count)
        .filter(|s| !shards.contains(s))
        .map(|s| format!("{s}/{count}"))
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "warning: shards {} are missing; the result covers only the shards given",
            missing.join(", ")
        );
    }
    for s in skipped {
        eprintln!("warning: skipping {}: {}", s.path.display(), s.reason);
    }
}

/// A resumable run's result: `Some` when it ended, `None` when Ctrl-C stopped it (after saying
/// where its state is: `saved` names what it holds, `-o` what to give to keep one). A state
/// made by another run is an error naming the file; `what` lists what must match.
pub fn ended<T>(
    result: std::result::Result<T, CoreError>,
    state_file: Option<&Path>,
    (saved, give, what): (&str, &str, &str),
) -> Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(CoreError::Stopped) => {
            match state_file {
                Some(f) => eprintln!(
                    "interrupted: {saved} so far are in {}; run the same command to resume",
                    f.display()
                ),
                None => eprintln!("interrupted: nothing saved (give -o {give} to resume a run)"),
            }
            Ok(None)
        }
        Err(CoreError::InvalidConfig {
            field: Field::Resume,
            problem: Problem::ResumeMismatch,
        }) => {
            let f = state_file.expect("a state was read from a file");
            Err(anyhow!(
                "{} is a partial result made with other weights, layer, preprocessing, {what} or \
                 shard; delete it or change -o",
                f.display()
            ))
        }
        Err(e) => Err(e.into()),
    }
}
