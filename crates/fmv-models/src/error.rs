//! The error type of `fmv-models`, grouped by whose fault it is: the caller's arguments, the
//! user's checkpoint files, or the compute backend.

use std::path::PathBuf;

/// A `Result` whose error is [`enum@Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong while loading a network or running it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- the caller's arguments -------------------------------------------------------------
    /// A layer name that the network does not have.
    #[error("unknown layer `{name}`; valid layers: {valid}")]
    UnknownLayer {
        /// The name that was asked for.
        name: String,
        /// The valid names, comma-separated.
        valid: String,
    },
    /// A compat layer integer outside the range the network has.
    #[error(
        "layer index {index} is out of range: this {arch} has {len} {what} (valid: {min}..={max}, negative counts from the end)"
    )]
    LayerIndexOutOfRange {
        /// The integer that was asked for.
        index: i64,
        /// The architecture's name.
        arch: String,
        /// How many items the integer indexes.
        len: usize,
        /// What the integer indexes ("blocks in layer4", "convolutions").
        what: &'static str,
        /// The smallest valid index.
        min: i64,
        /// The largest valid index.
        max: i64,
    },
    /// An architecture name fmv does not know.
    #[error("unknown architecture `{name}`; valid: auto, {valid}")]
    UnknownArch {
        /// The name that was asked for.
        name: String,
        /// The valid names, comma-separated.
        valid: String,
    },
    /// A device string that does not parse, or a backend this build lacks.
    #[error("device `{device}` is not available: {reason}")]
    DeviceUnavailable {
        /// The device as the user wrote it.
        device: String,
        /// Why, and how to fix it.
        reason: String,
    },
    /// An input the network cannot take (wrong rank, channels, or too small).
    #[error("input of shape {shape:?} cannot go through this network: {reason}")]
    BadInput {
        /// The input's shape.
        shape: Vec<usize>,
        /// What is wrong with it.
        reason: String,
    },

    // ---- the user's files ------------------------------------------------------------------
    /// The weights file could not be read.
    #[error("cannot read weights file {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The weights file is not a readable safetensors or PyTorch zip checkpoint.
    #[error(
        "cannot parse {path} as a {format} checkpoint: {reason}; fmv reads safetensors files and zip-format PyTorch `.pth`/`.pt` files (torch >= 1.6)"
    )]
    BadCheckpoint {
        /// The file.
        path: PathBuf,
        /// "safetensors" or "PyTorch".
        format: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// The checkpoint's keys fit neither a ResNet nor a VGG.
    #[error(
        "{path}: the tensors do not form a torchvision/timm ResNet or VGG (found keys such as {sample})"
    )]
    UnrecognizedArchitecture {
        /// The file.
        path: PathBuf,
        /// A few of the keys found.
        sample: String,
    },
    /// The checkpoint holds another architecture than the one asked for.
    #[error(
        "{path} holds a {found}, not a {requested}; require {found}, or let the architecture be inferred"
    )]
    ArchMismatch {
        /// The file.
        path: PathBuf,
        /// What the user asked for.
        requested: String,
        /// What the file holds.
        found: String,
    },
    /// A head fmv cannot interpret, when `logits` are asked for (or when the user stated a
    /// layout that does not fit it).
    #[error(
        "{}", unusable_head(.path, .prefix, .reason, .stated.as_deref())
    )]
    UnusableHead {
        /// The file.
        path: PathBuf,
        /// The head's prefix (`fc`, `classifier`).
        prefix: String,
        /// What could not be interpreted.
        reason: String,
        /// The layout the user stated, if any.
        stated: Option<String>,
    },
    /// `logits` asked of a checkpoint without a classifier.
    #[error(
        "{path} has no classifier (no `{prefix}.*` tensors), so it has no `logits`; its feature maps up to `avgpool` work"
    )]
    NoHead {
        /// The file.
        path: PathBuf,
        /// Where the head's tensors would be.
        prefix: &'static str,
    },
    /// Tensors the architecture needs are absent.
    #[error("{path}: missing {} tensor(s) for {arch} (key scheme {scheme}): {}{}", .missing.len(), list_keys(.missing), unused_note(.unexpected))]
    MissingTensors {
        /// The file.
        path: PathBuf,
        /// The inferred architecture.
        arch: String,
        /// The detected key scheme ("torchvision", "timm").
        scheme: &'static str,
        /// Each missing key with its expected shape.
        missing: Vec<(String, Vec<usize>)>,
        /// The file's tensors that the architecture does not use (a renamed key shows up in
        /// both lists).
        unexpected: Vec<(String, Vec<usize>)>,
    },
    /// Tensors that the architecture does not use.
    #[error("{path}: {} unexpected tensor(s) for {arch} (key scheme {scheme}): {}; every tensor of a checkpoint must be used", .unexpected.len(), list_keys(.unexpected))]
    UnexpectedTensors {
        /// The file.
        path: PathBuf,
        /// The inferred architecture.
        arch: String,
        /// The detected key scheme.
        scheme: &'static str,
        /// Each unexpected key with its shape.
        unexpected: Vec<(String, Vec<usize>)>,
    },
    /// A tensor whose shape is not the one the architecture needs.
    #[error("{path}: tensor `{key}` has shape {found:?}, expected {expected:?} for {arch}")]
    ShapeMismatch {
        /// The file.
        path: PathBuf,
        /// The key as written in the file.
        key: String,
        /// The inferred architecture.
        arch: String,
        /// The shape the architecture needs.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A tensor whose description or data in the file cannot be used (a shape, offset or
    /// storage that does not add up).
    #[error("{path}: tensor `{key}` cannot be read: {reason}")]
    BadTensor {
        /// The file.
        path: PathBuf,
        /// The key as written in the file.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A tensor with NaN or infinite values.
    #[error("{path}: tensor `{key}` contains {count} {kind} value(s); the checkpoint is corrupt")]
    NonFiniteWeights {
        /// The file.
        path: PathBuf,
        /// The key as written in the file.
        key: String,
        /// "NaN" or "inf".
        kind: &'static str,
        /// How many such values.
        count: usize,
    },
    /// A BatchNorm running variance so negative that the layer would divide by the square root
    /// of a negative number (PyTorch would compute NaN there).
    #[error(
        "{path}: tensor `{key}` holds a variance of {value} at channel {channel}, below -{eps}; BatchNorm would take the square root of a negative number, so the checkpoint is corrupt"
    )]
    NegativeVariance {
        /// The file.
        path: PathBuf,
        /// The key as written in the file.
        key: String,
        /// The first such channel.
        channel: usize,
        /// Its value.
        value: f64,
        /// BatchNorm's epsilon, which the variance must exceed in magnitude when negative.
        eps: f64,
    },
    /// A tensor of a dtype that cannot hold weights.
    #[error("{path}: tensor `{key}` has dtype {dtype}, expected a floating-point type")]
    UnsupportedDtype {
        /// The file.
        path: PathBuf,
        /// The key as written in the file.
        key: String,
        /// The dtype found.
        dtype: String,
    },

    // ---- the backend -----------------------------------------------------------------------
    /// A tensor operation failed inside candle.
    #[error("{op} failed")]
    Backend {
        /// What fmv was doing.
        op: &'static str,
        /// candle's error.
        #[source]
        source: candle_core::Error,
    },
}

fn list_keys(keys: &[(String, Vec<usize>)]) -> String {
    const SHOWN: usize = 6;
    let mut out: Vec<String> = keys
        .iter()
        .take(SHOWN)
        .map(|(k, s)| format!("`{k}` {s:?}"))
        .collect();
    if keys.len() > SHOWN {
        out.push(format!("and {} more", keys.len() - SHOWN));
    }
    out.join(", ")
}

/// [`Error::UnusableHead`]'s message: a stated layout that does not fit, or a head that cannot be
/// read and what fmv reads.
fn unusable_head(
    path: &std::path::Path,
    prefix: &str,
    reason: &str,
    stated: Option<&str>,
) -> String {
    match stated {
        Some(layout) => format!(
            "{}: the head layout `{layout}` does not fit the classifier `{prefix}`: {reason}",
            path.display()
        ),
        None => format!(
            "{}: the classifier head `{prefix}` cannot be interpreted: {reason}; its feature maps \
             up to `avgpool` work, and `logits` need Linear and BatchNorm1d layers with \
             elementwise activations between them (their layout can be stated where \
             torchvision's convention, a ReLU between two layers, is not the head's)",
            path.display()
        ),
    }
}

/// `; the file also has N tensor(s) it does not use: ...`, or nothing.
fn unused_note(unexpected: &[(String, Vec<usize>)]) -> String {
    if unexpected.is_empty() {
        String::new()
    } else {
        format!(
            "; and it has {} tensor(s) this architecture does not use: {}",
            unexpected.len(),
            list_keys(unexpected)
        )
    }
}

/// candle's error without the backtraces candle captures when `RUST_BACKTRACE` is set (a
/// user's error is one message).
pub(crate) fn plain(e: candle_core::Error) -> candle_core::Error {
    use candle_core::Error as E;
    match e {
        E::WithBacktrace { inner, .. } => plain(*inner),
        E::Context { inner, context } => E::Context {
            inner: Box::new(plain(*inner)),
            context,
        },
        E::WithPath { inner, path } => E::WithPath {
            inner: Box::new(plain(*inner)),
            path,
        },
        other => other,
    }
}

impl Error {
    /// A candle error while fmv was doing `op` (without candle's backtraces).
    pub fn backend(op: &'static str, source: candle_core::Error) -> Self {
        Error::Backend {
            op,
            source: plain(source),
        }
    }
}

/// Attaches what fmv was doing to a candle error.
pub(crate) trait BackendContext<T> {
    /// Wraps the error as [`Error::Backend`].
    fn op(self, op: &'static str) -> Result<T>;
}

impl<T> BackendContext<T> for std::result::Result<T, candle_core::Error> {
    fn op(self, op: &'static str) -> Result<T> {
        self.map_err(|source| Error::backend(op, source))
    }
}

impl From<candle_core::Error> for Error {
    fn from(source: candle_core::Error) -> Self {
        Error::backend("a tensor operation", source)
    }
}
