//! How users address feature maps: [`LayerRef`] (a name or the original package's integer), and
//! what a network says about each of its taps ([`LayerInfo`]).

use std::fmt;
use std::str::FromStr;

/// A layer as the user wrote it.
///
/// Parsing never fails: text that is an integer becomes [`LayerRef::Compat`], anything else a
/// [`LayerRef::Name`]; the network decides whether it exists ([`crate::Backbone::resolve`]).
///
/// ```
/// use fmv_models::LayerRef;
/// assert_eq!("-2".parse::<LayerRef>().unwrap(), LayerRef::Compat(-2));
/// assert_eq!("layer4.1".parse::<LayerRef>().unwrap(), LayerRef::Name("layer4.1".into()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LayerRef {
    /// A tap name: `layer4.1`, `features.28`, `logits`, ...
    Name(String),
    /// FeatureMapVisualizer's integer: for ResNet a block of `layer4` (Python indexing, `-2` is
    /// the second-to-last block), for VGG the n-th convolution of `features`.
    Compat(i64),
}

impl FromStr for LayerRef {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Ok(match s.parse::<i64>() {
            Ok(i) => LayerRef::Compat(i),
            Err(_) => LayerRef::Name(s.to_string()),
        })
    }
}

impl fmt::Display for LayerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerRef::Name(n) => f.write_str(n),
            LayerRef::Compat(i) => write!(f, "{i}"),
        }
    }
}

/// The index of a tap in [`crate::Backbone::layers`]; taps are listed in forward order, so a
/// larger id is computed later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LayerId(pub usize);

/// The two families of networks fmv knows. Some of the original's conventions differ by family
/// (the ×2 overlay mask for ResNet, the ÷max for VGG).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Family {
    /// torchvision ResNet (BasicBlock or Bottleneck).
    ResNet,
    /// torchvision VGG (with or without BatchNorm).
    Vgg,
}

/// What kind of value a tap holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum LayerKind {
    /// A convolution's output after its (BatchNorm and) ReLU: ResNet `conv1`, VGG `features.N`.
    Conv,
    /// A max-pooling output (`maxpool`, VGG `features.N` pools).
    Pool,
    /// A residual block's output, after the final ReLU (`layer4.1`).
    Block,
    /// A residual stage's output (`layer4`), the same values as its last block.
    Stage,
    /// The global or adaptive average pool before the classifier.
    AvgPool,
    /// The classifier's output, one value per class.
    Logits,
}

/// A tap of a network.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LayerInfo {
    /// The tap's name, in the checkpoint's own naming (`layer3.5`, `features.28`).
    pub name: String,
    /// What the tap holds.
    pub kind: LayerKind,
    /// The number of channels (feature maps), or of classes for `logits`.
    pub channels: usize,
}
