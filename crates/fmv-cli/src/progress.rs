//! Progress bars on stderr (hidden when stderr is not a terminal), fed by the library's events.

use fmv::Event;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar that follows [`Event::Progress`].
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar labelled `what` (e.g. "images").
    pub fn new(what: &str) -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{{bar:40}} {{pos}}/{{len}} {what} ({{elapsed}}, eta {{eta}})"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Progress { bar }
    }

    /// Updates the bar.
    pub fn on_event(&self, event: &Event) {
        if let Event::Progress { done, total } = event {
            self.bar.set_length(*total as u64);
            self.bar.set_position(*done as u64);
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
