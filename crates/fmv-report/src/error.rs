//! The error type of `fmv-report`: an analysis failed, a picture could not be drawn, or the
//! inputs do not make a report.

/// A `Result` whose error is [`enum@Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong while building a report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An analysis failed (or was stopped: [`fmv_core::Error::Stopped`]).
    #[error(transparent)]
    Analysis(#[from] fmv_core::Error),
    /// A picture could not be drawn.
    #[error(transparent)]
    Render(#[from] fmv_render::RenderError),
    /// The test folder's classes are not the training folder's.
    #[error(
        "the test folder {test_root} has the classes {}, the training folder {train_root} has {}: the report needs the same classes in both",
        .test.join(", "), .train.join(", ")
    )]
    ClassesDiffer {
        /// The training folder.
        train_root: String,
        /// Its classes.
        train: Vec<String>,
        /// The test folder.
        test_root: String,
        /// Its classes.
        test: Vec<String>,
    },
    /// Some of the test images chosen for a figure could not be read.
    #[error("{missing} of the {chosen} test images chosen for {class} could not be read")]
    Unreadable {
        /// The class whose figure it is.
        class: String,
        /// How many could not be read.
        missing: usize,
        /// How many were chosen.
        chosen: usize,
    },
    /// A document could not be written as JSON.
    #[error("cannot write JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Class names that do not name the classifier's outputs one for one.
    #[error(
        "{labels} class names were given for the classifier's {outputs} outputs; give one name per output, in order"
    )]
    LabelsDiffer {
        /// How many names.
        labels: usize,
        /// How many outputs.
        outputs: usize,
    },
    /// A count of the report's configuration is zero.
    #[error("invalid `{field}`: must be at least 1")]
    Zero {
        /// The setting.
        field: crate::ReportField,
    },
}

impl From<fmv_models::Error> for Error {
    fn from(e: fmv_models::Error) -> Self {
        Error::Analysis(e.into())
    }
}
