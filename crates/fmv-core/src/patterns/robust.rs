//! Robust activation maximisation (see the module above).

use fmv_models::LayerId;

use super::{Pattern, PatternConfig};
use crate::error::Result;
use crate::visualizer::{Event, Visualizer};

pub(super) fn run(
    _viz: &Visualizer,
    _layer: LayerId,
    _config: &PatternConfig,
    _on_event: &mut dyn FnMut(&Event),
    _should_stop: &dyn Fn() -> bool,
) -> Result<Vec<Pattern>> {
    unimplemented!()
}
