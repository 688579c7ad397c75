//! The one font every picture uses: Liberation Sans, embedded (SIL Open Font License 1.1, see
//! `fonts/OFL.txt`), so that text renders the same on every machine and no system font is
//! ever looked up.

use std::sync::Once;

use plotters::style::{FontStyle, IntoFont, TextStyle};

/// The family name the embedded font is registered under in plotters.
pub(crate) const FAMILY: &str = "fmv-sans";

/// The font file's bytes.
pub(crate) const FONT_BYTES: &[u8] = include_bytes!("../fonts/LiberationSans-Regular.ttf");

/// Registers the embedded font with plotters, once per process.
pub(crate) fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid TrueType file compiled into the crate; a failure here is a
        // build defect that the golden-image tests catch.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT_BYTES);
    });
}

/// A text style of `size` pixels in the embedded font.
pub(crate) fn text(size: f64) -> TextStyle<'static> {
    register();
    (FAMILY, size).into_font().into()
}
