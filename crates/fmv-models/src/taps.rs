//! Collecting the requested taps during a forward pass, starting it at a tap, changing a tap's
//! value on the way, and stopping at the deepest tap wanted.

use candle_core::Tensor;
use fmv_kernels::Tile;

use crate::layer::LayerId;

/// Where a forward pass starts, what it changes on the way and what it returns
/// ([`crate::Backbone::forward_pass`]).
///
/// By default a pass starts at the input, changes nothing and returns whole taps.
/// [`Pass::from_tap`] resumes it from a tap's value (the layers up to that tap are not run
/// again), [`Pass::zeroing`] sets channels of one tap to 0 before the rest of the network sees
/// them: the ablation of those feature maps, as a PyTorch forward hook that zeroes them would
/// do, and [`Pass::selecting`] returns only some channels of one tap.
///
/// ```
/// use fmv_models::{LayerId, Pass};
/// let pass = Pass::from_tap(LayerId(3)).zeroing(LayerId(3), vec![0, 7]);
/// assert_eq!(pass.start(), Some(LayerId(3)));
/// assert_eq!(pass.zeroed(), Some((LayerId(3), &[0, 7][..])));
/// assert_eq!(pass.selected(), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pass {
    start: Option<LayerId>,
    zero: Option<(LayerId, Vec<usize>)>,
    select: Option<(LayerId, Vec<usize>)>,
    tracked_tile: Tile,
}

impl Pass {
    /// A pass from the input (`N×3×H×W`) that changes nothing.
    pub fn from_input() -> Self {
        Pass::default()
    }

    /// A pass whose input is the value of tap `layer` (as [`crate::Backbone::forward_taps`]
    /// returned it); the network runs on from there.
    pub fn from_tap(layer: LayerId) -> Self {
        Pass {
            start: Some(layer),
            ..Pass::default()
        }
    }

    /// Sets `channels` of tap `layer` to 0 (in every image of the batch) before the layers
    /// after it run. The tap's own value, when asked for, is the zeroed one.
    pub fn zeroing(mut self, layer: LayerId, channels: Vec<usize>) -> Self {
        self.zero = Some((layer, channels));
        self
    }

    /// Returns only `channels` of tap `layer`, in that order (channel `j` of the value returned
    /// for `layer` is its channel `channels[j]`, after any zeroing); the layers after it still
    /// see the whole tap. When `layer` is the deepest tap asked for, a network may compute only
    /// those channels of the layer that makes it (VGG's convolutions and pools do): the same
    /// values, with less work forward and backward.
    ///
    /// ```
    /// use fmv_models::{LayerId, Pass};
    /// let pass = Pass::from_input().selecting(LayerId(5), vec![12, 3]);
    /// assert_eq!(pass.selected(), Some((LayerId(5), &[12, 3][..])));
    /// ```
    pub fn selecting(mut self, layer: LayerId, channels: Vec<usize>) -> Self {
        self.select = Some((layer, channels));
        self
    }

    /// The tap of which only some channels are returned, and those channels.
    pub fn selected(&self) -> Option<(LayerId, &[usize])> {
        self.select.as_ref().map(|(l, c)| (*l, c.as_slice()))
    }

    /// The tap the pass starts from, if not the input.
    pub fn start(&self) -> Option<LayerId> {
        self.start
    }

    /// The tap whose channels are zeroed, and the channels.
    pub fn zeroed(&self) -> Option<(LayerId, &[usize])> {
        self.zero.as_ref().map(|(l, c)| (*l, c.as_slice()))
    }

    /// Lets a tracked input's 3×3 convolutions take Winograd tiles up to `tile` on the CPU
    /// (forward and backward). By default [`Tile::F2`], which rounds like the direct algorithm;
    /// [`Tile::F4`] needs 1.8× fewer multiplications on maps of at least 24 pixels a side, and
    /// rounds more.
    pub fn with_tracked_tile(mut self, tile: Tile) -> Self {
        self.tracked_tile = tile;
        self
    }

    /// The largest Winograd tile a tracked input's convolutions may take.
    pub fn tracked_tile(&self) -> Tile {
        self.tracked_tile
    }
}

/// Receives every tap's value in forward order; the network asks [`Tapper::computes`] before
/// each step (`false` for the steps before the pass's start) and [`Tapper::emit`] after it, and
/// stops as soon as `emit` answers `true`.
pub(crate) struct Tapper<'a> {
    wanted: &'a [LayerId],
    pass: &'a Pass,
    out: Vec<Option<Tensor>>,
    next: usize,
    deepest: usize,
    /// Whether the network computed only the selected channels of the selected tap.
    narrowed: bool,
}

impl<'a> Tapper<'a> {
    pub fn new(wanted: &'a [LayerId], pass: &'a Pass) -> Self {
        Tapper {
            wanted,
            pass,
            out: vec![None; wanted.len()],
            next: 0,
            deepest: wanted.iter().map(|l| l.0).max().unwrap_or(0),
            narrowed: false,
        }
    }

    /// The channels the network may compute alone in the step that makes the next tap: the
    /// pass's selection when that tap is the selected one and the deepest wanted (nothing after
    /// it runs). A network that takes them computes only those channels, in that order, and
    /// [`Tapper::emit`] then takes its value as already selected.
    pub fn narrowing(&mut self) -> Option<Vec<usize>> {
        let (layer, channels) = self.pass.select.as_ref()?;
        if layer.0 != self.next || self.next != self.deepest || !self.computes() {
            return None;
        }
        self.narrowed = true;
        Some(channels.clone())
    }

    /// The largest Winograd tile a tracked input's convolutions may take.
    pub fn tracked_tile(&self) -> Tile {
        self.pass.tracked_tile
    }

    /// Whether the step that produces the next tap must run: `false` up to and including the
    /// tap the pass starts from (its value is the input).
    pub fn computes(&self) -> bool {
        self.pass.start.is_none_or(|s| self.next > s.0)
    }

    /// Records the value of the next tap (zeroing its channels first, if the pass says so);
    /// `true` once the deepest wanted tap is recorded.
    pub fn emit(&mut self, x: &mut Tensor) -> candle_core::Result<bool> {
        let id = self.next;
        self.next += 1;
        if self.pass.start.is_some_and(|s| id < s.0) {
            return Ok(false);
        }
        let selected = self.pass.select.as_ref().filter(|(l, _)| l.0 == id);
        if let Some((layer, channels)) = &self.pass.zero
            && layer.0 == id
        {
            *x = match selected {
                // `x` holds the selected channels only: zero those among them.
                Some((_, kept)) if self.narrowed => {
                    let at: Vec<usize> = (0..kept.len())
                        .filter(|&j| channels.contains(&kept[j]))
                        .collect();
                    zero_channels(x, &at)?
                }
                _ => zero_channels(x, channels)?,
            };
        }
        let value = match selected {
            Some((_, kept)) if !self.narrowed => select_channels(x, kept)?,
            _ => x.clone(),
        };
        for (slot, w) in self.out.iter_mut().zip(self.wanted) {
            if w.0 == id {
                *slot = Some(value.clone());
            }
        }
        Ok(id >= self.deepest)
    }

    /// The recorded values, in the order they were asked for.
    pub fn finish(self) -> Vec<Tensor> {
        self.out
            .into_iter()
            .map(|t| t.expect("every wanted tap is emitted before the forward pass ends"))
            .collect()
    }
}

/// Channels `channels` of `x` (`N×C…`), in that order.
pub(crate) fn select_channels(x: &Tensor, channels: &[usize]) -> candle_core::Result<Tensor> {
    let ids: Vec<u32> = channels.iter().map(|&c| c as u32).collect();
    let ids = Tensor::from_vec(ids, channels.len(), x.device())?;
    x.index_select(&ids, 1)
}

/// `x` (`N×C…`) with `channels` set to 0: multiplied by a 0/1 mask over dimension 1.
fn zero_channels(x: &Tensor, channels: &[usize]) -> candle_core::Result<Tensor> {
    let c = x.dim(1)?;
    let mut mask = vec![1f32; c];
    for &k in channels {
        if let Some(m) = mask.get_mut(k) {
            *m = 0.0;
        }
    }
    let mut shape = vec![1, c];
    shape.resize(x.rank(), 1);
    let mask = Tensor::from_vec(mask, shape, x.device())?.to_dtype(x.dtype())?;
    x.broadcast_mul(&mask)
}
