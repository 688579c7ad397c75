//! The error type of `fmv-core`: the caller's arguments, the user's files, and the model.

use std::path::PathBuf;

/// A `Result` whose error is [`enum@Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in an analysis.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Loading or running the network failed (unknown layer, bad weights, ...).
    #[error(transparent)]
    Model(Box<fmv_models::Error>),

    // ---- the caller's arguments -------------------------------------------------------------
    /// An argument outside its valid range.
    #[error("invalid {name}: {reason}")]
    InvalidArgument {
        /// The argument's name as the CLI spells it (`--top`, `--size`).
        name: &'static str,
        /// What is wrong and what is valid.
        reason: String,
    },
    /// An input so large that its maps alone exceed the memory available (checked on the CPU
    /// before a run starts, with a lower bound on what the run needs).
    #[error(
        "{what} needs at least {need} of memory for its maps (up to `{layer}`) and input, and {available} is available; {fix}"
    )]
    OutOfMemory {
        /// The pass, with its size (`a compat step at 40000x40000 px`).
        what: String,
        /// The layer the maps lead to.
        layer: String,
        /// The lower bound, for a person (`3.0 GiB`).
        need: String,
        /// The memory available, for a person.
        available: String,
        /// The arguments that set the size.
        fix: &'static str,
    },
    /// A channel index the layer does not have.
    #[error("channel {channel} does not exist in layer `{layer}`, which has {channels} channels (valid: 0..={max})", max = .channels.saturating_sub(1))]
    ChannelOutOfRange {
        /// The channel asked for.
        channel: usize,
        /// The layer's name.
        layer: String,
        /// How many channels the layer has.
        channels: usize,
    },

    // ---- the user's files ------------------------------------------------------------------
    /// A file or folder could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file that is not an image in any format fmv reads.
    #[error(
        "{path} is not an image (fmv reads JPEG, PNG, GIF, BMP, TIFF and WebP, recognised by content)"
    )]
    NotAnImage {
        /// The file.
        path: PathBuf,
    },
    /// A file that looks like an image but cannot be decoded.
    #[error("cannot decode image {path}: {reason}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// The decoder's complaint.
        reason: String,
    },
    /// Nothing to work on.
    #[error("no images to process: {reason}")]
    NoImages {
        /// Why, naming the folder or argument.
        reason: String,
    },
    /// A numeric problem in the model's output.
    #[error(
        "the activations of `{layer}` for {path} contain NaN or infinite values; check the weights and the input"
    )]
    NonFinite {
        /// The layer.
        layer: String,
        /// The image.
        path: PathBuf,
    },
    /// The operating system refused to start a worker thread.
    #[error("cannot start the worker threads: {0}; lower RAYON_NUM_THREADS or free resources")]
    Threads(String),
}

impl From<fmv_models::Error> for Error {
    fn from(e: fmv_models::Error) -> Self {
        Error::Model(Box::new(e))
    }
}

impl From<candle_core::Error> for Error {
    fn from(source: candle_core::Error) -> Self {
        fmv_models::Error::Backend {
            op: "a tensor operation",
            source,
        }
        .into()
    }
}
