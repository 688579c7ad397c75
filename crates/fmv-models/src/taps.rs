//! Collecting the requested taps during a forward pass, and stopping at the deepest one.

use candle_core::Tensor;

use crate::layer::LayerId;

/// Receives every tap's value in forward order; the network asks [`Tapper::emit`] after each
/// tap and stops as soon as it answers `true`.
pub(crate) struct Tapper<'a> {
    wanted: &'a [LayerId],
    out: Vec<Option<Tensor>>,
    next: usize,
    deepest: usize,
}

impl<'a> Tapper<'a> {
    pub fn new(wanted: &'a [LayerId]) -> Self {
        Tapper {
            wanted,
            out: vec![None; wanted.len()],
            next: 0,
            deepest: wanted.iter().map(|l| l.0).max().unwrap_or(0),
        }
    }

    /// Records the value of the next tap; `true` once the deepest wanted tap is recorded.
    pub fn emit(&mut self, x: &Tensor) -> bool {
        let id = self.next;
        self.next += 1;
        for (slot, w) in self.out.iter_mut().zip(self.wanted) {
            if w.0 == id {
                *slot = Some(x.clone());
            }
        }
        id >= self.deepest
    }

    /// The recorded values, in the order they were asked for.
    pub fn finish(self) -> Vec<Tensor> {
        self.out
            .into_iter()
            .map(|t| t.expect("every wanted tap is emitted before the forward pass ends"))
            .collect()
    }
}
