//! The error type of `fmv-core`, grouped by whose fault it is: the caller's settings, the user's
//! files, the model, and the run itself.
//!
//! A setting is named by a [`Field`] and what is wrong with it by a [`Problem`], both data: the
//! library words them with the settings' own names (`n_each_img`), and a front end words them
//! its own way ([`Error::display_with`]: the CLI names its flags, `--n-each-img`).

use std::fmt;
use std::path::PathBuf;

/// A `Result` whose error is [`enum@Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// A setting an analysis checks, as its errors name it.
///
/// Its `Display` is the setting's name in this library (that of its `with_*` setter, or its
/// function's argument): `n_each_img`, `upscaling_factor`. A front end maps each to its own
/// name for it ([`Error::display_with`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Field {
    /// The channels of a pattern, map or overlay ([`crate::PatternConfig::new`],
    /// [`crate::FilterMapsConfig::new`]).
    Filters,
    /// Adam's learning rate of a pattern.
    Lr,
    /// Compat patterns: optimisation steps per scale.
    OptSteps,
    /// Compat patterns: the number of scales.
    UpscalingSteps,
    /// Compat patterns: the growth factor between scales.
    UpscalingFactor,
    /// Compat patterns: the image to start from.
    InitImage,
    /// Compat patterns: the side of the initial random image.
    InitSize,
    /// Robust patterns: optimisation steps.
    Steps,
    /// Activations: the top channels listed per image.
    Top,
    /// The preprocessing's preset.
    Preset,
    /// The preprocessing's input size.
    Size,
    /// The preprocessing's per-channel mean.
    Mean,
    /// The preprocessing's per-channel standard deviation.
    Std,
    /// The images per forward pass.
    BatchSize,
    /// Ranking: the top maps counted per image.
    NEachImg,
    /// Ranking: the most frequent maps kept per class.
    NEachClass,
    /// Ranking: the shard of every class a run processes.
    Shard,
    /// The classes of an image folder to use.
    Classes,
    /// Ranking: the saved state a run resumes from.
    Resume,
    /// Ranking: the partial results merged.
    Parts,
    /// Whether a file that cannot be used fails the run.
    Strict,
    /// The layer an analysis reads.
    Layer,
    /// Exemplars: the images kept per map.
    K,
    /// Exemplars and ablation: the maps (channels) asked for.
    Maps,
    /// Ablation: the random channel sets each class's drop is compared with.
    RandomSets,
    /// Ablation: the names of the network's outputs.
    Labels,
}

impl Field {
    /// The setting's name in this library.
    pub fn name(self) -> &'static str {
        match self {
            Field::Filters => "filters",
            Field::Lr => "lr",
            Field::OptSteps => "opt_steps",
            Field::UpscalingSteps => "upscaling_steps",
            Field::UpscalingFactor => "upscaling_factor",
            Field::InitImage => "init_image",
            Field::InitSize => "init_size",
            Field::Steps => "steps",
            Field::Top => "top",
            Field::Preset => "preset",
            Field::Size => "size",
            Field::Mean => "mean",
            Field::Std => "std",
            Field::BatchSize => "batch_size",
            Field::NEachImg => "n_each_img",
            Field::NEachClass => "n_each_class",
            Field::Shard => "shard",
            Field::Classes => "classes",
            Field::Resume => "resume",
            Field::Parts => "parts",
            Field::Strict => "strict",
            Field::Layer => "layer",
            Field::K => "k",
            Field::Maps => "maps",
            Field::RandomSets => "random_sets",
            Field::Labels => "labels",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What is wrong with a setting ([`Error::InvalidConfig`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Problem {
    /// Zero where at least one is needed.
    Zero,
    /// An empty list of channels.
    NoChannels,
    /// A value that must be positive and finite is not.
    NotPositive,
    /// A value of a triple is NaN or infinite.
    NotFinite,
    /// A value of a triple is not positive and finite.
    NotPositiveEach,
    /// A growth factor that does not grow.
    NotAboveOne,
    /// A channel listed twice.
    ChannelTwice(usize),
    /// A class listed twice.
    ClassTwice(String),
    /// An image that must be square is not.
    NotSquare {
        /// Its width.
        width: usize,
        /// Its height.
        height: usize,
    },
    /// A compat schedule whose last scale is absurdly large.
    ScheduleTooLarge {
        /// The number of scales.
        scales: usize,
        /// The first scale's side.
        first: usize,
        /// The growth factor.
        factor: f64,
        /// The last scale's side.
        last: f64,
    },
    /// A compat schedule whose factor leaves the first side unchanged after rounding down.
    ScheduleStalls {
        /// The growth factor.
        factor: f64,
        /// The first scale's side.
        first: usize,
    },
    /// An input too small to reach the layer.
    TooSmall {
        /// The input's side.
        side: usize,
        /// The layer.
        layer: String,
        /// The smallest side that reaches it.
        min: usize,
    },
    /// A preset name fmv does not know.
    UnknownPreset(String),
    /// An input size with no pixels.
    EmptySize {
        /// The width.
        width: usize,
        /// The height.
        height: usize,
    },
    /// A per-image cut-off that every map would pass.
    NotBelowChannels {
        /// The cut-off.
        n: usize,
        /// The layer's channel count.
        channels: usize,
        /// The layer.
        layer: String,
    },
    /// Too few classes to find maps unique to one.
    TooFewClasses(Vec<String>),
    /// A class the folder does not have.
    UnknownClass {
        /// The class asked for.
        name: String,
        /// The folder.
        root: PathBuf,
        /// The classes it has.
        available: Vec<String>,
    },
    /// Nothing to merge.
    NoParts,
    /// Partial results of different rankings.
    PartsDiffer {
        /// The part (counted from 1) that differs from the first.
        part: usize,
        /// What differs.
        what: &'static str,
        /// The first part's value.
        first: String,
        /// This part's value.
        this: String,
    },
    /// The same shard given twice.
    ShardTwice {
        /// The shard.
        index: usize,
        /// The shard count.
        count: usize,
    },
    /// A shard that is not `I/N`.
    ShardSyntax(String),
    /// A shard number that is not a number.
    ShardIndex(String),
    /// A shard count that is not a number.
    ShardCount(String),
    /// A shard outside `0..count`, or no shards.
    ShardOutOfRange {
        /// The shard.
        index: usize,
        /// The shard count.
        count: usize,
    },
    /// A layer without feature maps (`logits`) where maps are needed.
    NoMaps(String),
    /// Ablation at the last layer, after which nothing runs.
    NothingAfter(String),
    /// A class whose output the network's head does not have.
    ClassWithoutOutput {
        /// The class.
        class: String,
        /// Its output index (its place among the classes), if it has one.
        index: Option<usize>,
        /// The head's outputs.
        outputs: usize,
    },
    /// A class the labels do not name.
    ClassNotLabelled {
        /// The class.
        class: String,
        /// The first labels, for the message.
        labels: Vec<String>,
    },
    /// A saved state made by another run.
    ResumeMismatch,
    /// A saved state whose numbers do not add up (edited, or not written by fmv).
    StateInconsistent(String),
}

impl Problem {
    /// Writes the problem, naming other settings with `name`.
    fn write(&self, f: &mut fmt::Formatter<'_>, name: &dyn Fn(Field) -> String) -> fmt::Result {
        match self {
            Problem::Zero => f.write_str("must be at least 1"),
            Problem::NoChannels => f.write_str("give at least one channel"),
            Problem::NotPositive => f.write_str("must be positive and finite"),
            Problem::NotFinite => f.write_str("every value must be finite"),
            Problem::NotPositiveEach => f.write_str("every value must be positive and finite"),
            Problem::NotAboveOne => {
                f.write_str("must be greater than 1 (each scale is larger than the last)")
            }
            Problem::ChannelTwice(c) => write!(
                f,
                "channel {c} is listed twice; its pattern (and file) would be made twice"
            ),
            Problem::ClassTwice(c) => {
                write!(f, "class `{c}` is listed twice; name each class once")
            }
            Problem::NotSquare { width, height } => {
                write!(f, "must be square, is {width}x{height}")
            }
            Problem::ScheduleTooLarge {
                scales,
                first,
                factor,
                last,
            } => write!(
                f,
                "{scales} scales from {first} px by {factor} would end {last:.1e} px wide; the \
                 default schedule ends at 986 px"
            ),
            Problem::ScheduleStalls { factor, first } => write!(
                f,
                "{factor} does not grow a {first}-pixel image; use a larger factor or {}",
                name(Field::InitSize)
            ),
            Problem::TooSmall { side, layer, min } => write!(
                f,
                "a {side}x{side} image is too small to reach `{layer}`; this network needs at \
                 least {min}x{min}"
            ),
            Problem::UnknownPreset(p) => {
                write!(f, "unknown preset `{p}`; valid: original, imagenet")
            }
            Problem::EmptySize { width, height } => write!(f, "{width}x{height} is empty"),
            Problem::NotBelowChannels { n, channels, layer } => write!(
                f,
                "{n} is not below the {channels} channels of `{layer}`: every map would be \
                 among every image's top maps, so none could be unique to a class; use fewer \
                 than {channels} (the original's default is 25)"
            ),
            Problem::TooFewClasses(found) => write!(
                f,
                "ranking finds maps unique to a class among several; found {} class(es): {}",
                found.len(),
                found.join(", ")
            ),
            Problem::UnknownClass {
                name,
                root,
                available,
            } => write!(
                f,
                "no class `{name}` in {}; classes there: {}",
                root.display(),
                available.join(", ")
            ),
            Problem::NoParts => f.write_str("no partial results given"),
            Problem::PartsDiffer {
                part,
                what,
                first,
                this,
            } => write!(
                f,
                "part {part} was made with {what} {this}, part 1 with {first}; only parts of one \
                 ranking can be merged"
            ),
            Problem::ShardTwice { index, count } => {
                write!(f, "shard {index}/{count} is given twice")
            }
            Problem::ShardSyntax(s) => write!(f, "expected I/N (e.g. 0/4), got `{s}`"),
            Problem::ShardIndex(s) => write!(f, "`{s}` is not a shard number"),
            Problem::ShardCount(s) => write!(f, "`{s}` is not a shard count"),
            Problem::ShardOutOfRange { index, count } => {
                write!(f, "shard {index}/{count}: need 0 <= I < N")
            }
            Problem::NoMaps(layer) => write!(
                f,
                "`{layer}` holds the network's outputs, not feature maps; choose a convolutional \
                 layer"
            ),
            Problem::NothingAfter(layer) => write!(
                f,
                "`{layer}` is the network's last layer: zeroing it leaves nothing to watch; \
                 choose a layer before the head"
            ),
            Problem::ClassWithoutOutput {
                class,
                index: Some(index),
                outputs,
            } => write!(
                f,
                "class `{class}` is output {index} by folder order (sorted names → 0, 1, …), and \
                 the network has {outputs} outputs; name the outputs with {}",
                name(Field::Labels)
            ),
            Problem::ClassWithoutOutput { class, outputs, .. } => write!(
                f,
                "class `{class}` has no output among the network's {outputs}"
            ),
            Problem::ClassNotLabelled { class, labels } => write!(
                f,
                "class `{class}` of the test folder is none of the labels ({}{}); the folder \
                 names must be the labels of the outputs",
                labels
                    .iter()
                    .take(8)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
                if labels.len() > 8 { ", …" } else { "" }
            ),
            Problem::ResumeMismatch => f.write_str(
                "the saved partial result was made with other weights, layer, preprocessing, \
                 parameters, classes or shard; discard it to start afresh",
            ),
            Problem::StateInconsistent(why) => write!(
                f,
                "the saved counts do not add up ({why}); it was edited or not written by fmv"
            ),
        }
    }
}

/// The problem in this library's words.
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, &|field| format!("`{field}`"))
    }
}

/// Everything that can go wrong in an analysis.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Loading or running the network failed (unknown layer, bad weights, ...).
    Model(Box<fmv_models::Error>),

    // ---- the caller's settings ---------------------------------------------------------------
    /// A setting outside its valid range.
    InvalidConfig {
        /// The setting.
        field: Field,
        /// What is wrong with it.
        problem: Problem,
    },
    /// An input so large that its maps alone exceed the memory available (checked on the CPU
    /// before a run starts, with a lower bound on what the run needs).
    OutOfMemory {
        /// The pass, with its size (`a compat step at 40000x40000 px`).
        what: String,
        /// The layer the maps lead to.
        layer: String,
        /// The lower bound, in bytes.
        need: u128,
        /// The memory available, in bytes.
        available: u64,
        /// The settings that set the size, to lower.
        lower: &'static [Field],
        /// What else helps, written after them (`, or give fewer filters at a time`).
        note: &'static str,
    },
    /// A channel index the layer does not have.
    ChannelOutOfRange {
        /// The channel asked for.
        channel: usize,
        /// The layer's name.
        layer: String,
        /// How many channels the layer has.
        channels: usize,
    },

    // ---- the user's files --------------------------------------------------------------------
    /// A file or folder could not be read.
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Something that is not a regular file where one is needed (a device, a pipe, a folder).
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// A file larger than fmv reads for its purpose.
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size in bytes (or as much as was read).
        size: u64,
        /// The most bytes fmv reads from such a file.
        limit: u64,
    },
    /// A file that is not an image in any format fmv reads.
    NotAnImage {
        /// The file.
        path: PathBuf,
    },
    /// A file that looks like an image but cannot be decoded.
    Decode {
        /// The file.
        path: PathBuf,
        /// The decoder's complaint.
        reason: String,
    },
    /// A file of settings (a timm `config.json`, a labels file) that cannot be used.
    BadFile {
        /// The file.
        path: PathBuf,
        /// What it was read as (`timm config`, `labels file`).
        what: &'static str,
        /// What is wrong, and how to fix it.
        reason: String,
    },
    /// A file that would have been skipped, in a strict run ([`Field::Strict`]).
    Unusable {
        /// The file.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// Nothing to work on.
    NoImages {
        /// Why, naming the folder or argument.
        reason: String,
    },
    /// A numeric problem in the model's output.
    NonFinite {
        /// The layer.
        layer: String,
        /// The image.
        path: PathBuf,
    },

    // ---- the run -----------------------------------------------------------------------------
    /// The observer asked the run to stop ([`crate::Observer::should_stop`]) before it finished.
    Stopped,
    /// The operating system refused to start a worker thread.
    Threads(String),
}

impl Error {
    /// The error's message with every setting named by `name` instead of this library's
    /// names: a command-line front end passes the flag of each [`Field`].
    ///
    /// ```
    /// use fmv_core::{Error, Field, Problem};
    /// let e = Error::InvalidConfig { field: Field::NEachImg, problem: Problem::Zero };
    /// assert_eq!(e.to_string(), "invalid `n_each_img`: must be at least 1");
    /// let flag = |f: Field| format!("--{}", f.name().replace('_', "-"));
    /// assert_eq!(e.display_with(&flag).to_string(), "invalid --n-each-img: must be at least 1");
    /// ```
    pub fn display_with<'a>(&'a self, name: &'a dyn Fn(Field) -> String) -> impl fmt::Display + 'a {
        Worded { error: self, name }
    }

    /// Writes the message, naming settings with `name`.
    fn write(&self, f: &mut fmt::Formatter<'_>, name: &dyn Fn(Field) -> String) -> fmt::Result {
        match self {
            Error::Model(e) => write!(f, "{e}"),
            Error::InvalidConfig { field, problem } => {
                write!(f, "invalid {}: ", name(*field))?;
                problem.write(f, name)
            }
            Error::OutOfMemory {
                what,
                layer,
                need,
                available,
                lower,
                note,
            } => {
                write!(
                    f,
                    "{what} needs at least {} of memory for its maps (up to `{layer}`) and \
                     input, and {} is available; lower ",
                    crate::memory::bytes(*need),
                    crate::memory::bytes(*available as u128)
                )?;
                let names: Vec<String> = lower.iter().map(|&l| name(l)).collect();
                match names.split_last() {
                    None => {}
                    Some((last, [])) => f.write_str(last)?,
                    Some((last, rest)) => write!(f, "{} or {last}", rest.join(", "))?,
                }
                f.write_str(note)
            }
            Error::ChannelOutOfRange {
                channel,
                layer,
                channels,
            } => write!(
                f,
                "channel {channel} does not exist in layer `{layer}`, which has {channels} \
                 channels (valid: 0..={})",
                channels.saturating_sub(1)
            ),
            Error::Io { path, .. } => write!(f, "cannot read {}", path.display()),
            Error::NotAFile { path } => write!(
                f,
                "{} is not a regular file (a device, a pipe or a folder)",
                path.display()
            ),
            Error::TooLarge { path, size, limit } => write!(
                f,
                "{} is {}, more than the {} fmv reads from such a file",
                path.display(),
                crate::memory::bytes(*size as u128),
                crate::memory::bytes(*limit as u128)
            ),
            Error::NotAnImage { path } => write!(
                f,
                "{} is not an image (fmv reads JPEG, PNG, GIF, BMP, TIFF and WebP, recognised by \
                 content)",
                path.display()
            ),
            Error::Decode { path, reason } => {
                write!(f, "cannot decode image {}: {reason}", path.display())
            }
            Error::BadFile { path, what, reason } => {
                write!(f, "cannot use {} as a {what}: {reason}", path.display())
            }
            Error::Unusable { path, reason } => write!(
                f,
                "cannot use {}: {reason} ({} refuses to skip files)",
                path.display(),
                name(Field::Strict)
            ),
            Error::NoImages { reason } => write!(f, "no images to process: {reason}"),
            Error::NonFinite { layer, path } => write!(
                f,
                "the activations of `{layer}` for {} contain NaN or infinite values; check the \
                 weights and the input",
                path.display()
            ),
            Error::Stopped => f.write_str("the run was stopped before it finished"),
            Error::Threads(e) => write!(
                f,
                "cannot start the worker threads: {e}; lower RAYON_NUM_THREADS or free resources"
            ),
        }
    }
}

/// An error worded with a front end's names for the settings.
struct Worded<'a> {
    error: &'a Error,
    name: &'a dyn Fn(Field) -> String,
}

impl fmt::Display for Worded<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.write(f, self.name)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, &|field| format!("`{field}`"))
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Model(e) => e.source(),
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<fmv_models::Error> for Error {
    fn from(e: fmv_models::Error) -> Self {
        Error::Model(Box::new(e))
    }
}

impl From<candle_core::Error> for Error {
    fn from(source: candle_core::Error) -> Self {
        fmv_models::Error::backend("a tensor operation", source).into()
    }
}

impl Error {
    /// The error of an invalid setting.
    pub(crate) fn invalid(field: Field, problem: Problem) -> Self {
        Error::InvalidConfig { field, problem }
    }
}
