//! What can go wrong while drawing.

/// Why a picture could not be drawn.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// The map's values do not fill its stated size.
    #[error("map of {len} values cannot be {width}×{height}")]
    MapShape {
        /// Values given.
        len: usize,
        /// Stated width.
        width: usize,
        /// Stated height.
        height: usize,
    },
    /// The data cannot be plotted (empty, or not finite); the message says which.
    #[error("cannot plot: {0}")]
    Data(String),
    /// The plotting library failed.
    #[error("plotting failed: {0}")]
    Plot(String),
}
