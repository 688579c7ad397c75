//! The command line's observer of a run: progress bars on stderr (hidden when stderr is not a
//! terminal), one warning per file left out, and Ctrl-C as a stop request that the libraries
//! honour at the next batch or step.

use std::sync::atomic::{AtomicBool, Ordering};

use fmv::Event;
use fmv::core::Observer;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Set by the first Ctrl-C.
static STOP: AtomicBool = AtomicBool::new(false);

/// Makes Ctrl-C a stop request: the run at hand finishes its batch or step and keeps what it
/// has; a second Ctrl-C ends the process at once (exit code 130).
pub fn stop_on_ctrl_c() {
    // Without a handler (if one cannot be set) Ctrl-C simply ends the process, as before.
    let _ = ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!(
            "\ninterrupted: finishing the current batch or step and keeping what is done \
             (Ctrl-C again to abort)"
        );
    });
}

/// Whether Ctrl-C was pressed.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// What the bar counts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    Nothing,
    Images,
    Steps,
}

/// A run's observer: a progress bar for images or optimisation steps, warnings for skipped
/// files, Ctrl-C.
pub struct Session {
    bar: ProgressBar,
    unit: Unit,
    what: &'static str,
}

impl Session {
    /// An observer whose image bar says `what` ("images", "training images").
    pub fn new(what: &'static str) -> Self {
        Session {
            bar: ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
            unit: Unit::Nothing,
            what,
        }
    }

    fn count(&mut self, unit: Unit, done: usize, total: usize) {
        if self.unit != unit {
            let template = match unit {
                Unit::Steps => {
                    "{bar:40} {pos}/{len} steps ({elapsed}, eta {eta}) {msg}".to_string()
                }
                _ => format!(
                    "{{bar:40}} {{pos}}/{{len}} {} ({{elapsed}}, eta {{eta}})",
                    self.what
                ),
            };
            self.bar.set_style(
                ProgressStyle::with_template(&template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            self.unit = unit;
        }
        self.bar.set_length(total as u64);
        self.bar.set_position(done as u64);
    }

    /// Prints a line on stderr without tearing the bar.
    pub fn say(&self, line: &str) {
        self.bar.suspend(|| eprintln!("{line}"));
    }
}

impl Observer for Session {
    fn on_event(&mut self, event: &Event<'_>) {
        match event {
            Event::Progress { done, total } => self.count(Unit::Images, *done, *total),
            Event::Step {
                done,
                total,
                activation,
            } => {
                self.count(Unit::Steps, *done, *total);
                self.bar.set_message(format!("activation {activation:.4}"));
            }
            Event::Skipped(s) => self.say(&format!(
                "warning: skipping {}: {}",
                s.path.display(),
                s.reason
            )),
            _ => {}
        }
    }

    fn should_stop(&mut self) -> bool {
        stop_requested()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
