//! What a running analysis tells its caller, and how the caller stops it: every analysis takes
//! an [`Observer`], which receives [`Event`]s (progress, files skipped, results streamed out)
//! and is asked between batches and steps whether to stop.

use crate::exemplars::Exemplars;
use crate::inputs::Skipped;
use crate::maps::ImageMaps;
use crate::rank::RankCounts;

/// What an analysis reports while it runs.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event<'a> {
    /// `done` of `total` images are processed.
    Progress {
        /// Images finished.
        done: usize,
        /// Images in the run.
        total: usize,
    },
    /// Activation maximisation finished step `done` of `total`.
    Step {
        /// Steps finished.
        done: usize,
        /// Steps in the run.
        total: usize,
        /// The objective at this step's forward pass.
        activation: f64,
    },
    /// A file is left out of the run (it is also listed in the result).
    Skipped(&'a Skipped),
    /// A ranking's counting state after a batch: everything needed to resume the run from here
    /// ([`crate::RankConfig::with_resume`]). Save it to survive an interruption.
    RankCheckpoint(&'a RankCounts),
    /// The exemplars' state after a batch: everything needed to resume the run from here
    /// ([`crate::ExemplarsConfig::with_resume`]). Save it to survive an interruption.
    ExemplarsCheckpoint(&'a Exemplars),
    /// One image's maps ([`crate::Visualizer::filter_maps`]), streamed in file order so that
    /// memory stays flat: draw or save them here.
    Maps(&'a ImageMaps),
}

/// Receives an analysis's [`Event`]s and decides when it stops.
///
/// `()` observes nothing; a closure taking `&Event` observes every event and never stops the
/// run. A run asked to stop ends at the next batch or step: activation maximisation returns
/// the best images so far, a ranking has sent its last [`Event::RankCheckpoint`], a streamed
/// analysis has sent every image finished, and the others return [`crate::Error::Stopped`].
///
/// ```
/// use fmv_core::{Event, Observer};
/// struct Bar { done: usize, stop_after: usize }
/// impl Observer for Bar {
///     fn on_event(&mut self, event: &Event<'_>) {
///         if let Event::Progress { done, .. } = event {
///             self.done = *done;
///         }
///     }
///     fn should_stop(&mut self) -> bool {
///         self.done >= self.stop_after
///     }
/// }
/// let mut bar = Bar { done: 0, stop_after: 10 };
/// bar.on_event(&Event::Progress { done: 12, total: 100 });
/// assert!(bar.should_stop());
/// ```
pub trait Observer {
    /// Called with every event, on the thread that started the analysis.
    fn on_event(&mut self, event: &Event<'_>) {
        let _ = event;
    }

    /// Whether the run should stop as soon as it can; asked between batches and steps. By
    /// default, never.
    fn should_stop(&mut self) -> bool {
        false
    }
}

/// Observes nothing and never stops.
impl Observer for () {}

/// Observes every event; never stops.
impl<F: FnMut(&Event<'_>)> Observer for F {
    fn on_event(&mut self, event: &Event<'_>) {
        self(event)
    }
}

/// An observer of any type, sized, so that it can be passed on as `&mut dyn Observer`.
pub(crate) struct Dyn<'a, O: ?Sized>(pub &'a mut O);

impl<O: Observer + ?Sized> Observer for Dyn<'_, O> {
    fn on_event(&mut self, event: &Event<'_>) {
        self.0.on_event(event)
    }

    fn should_stop(&mut self) -> bool {
        self.0.should_stop()
    }
}
