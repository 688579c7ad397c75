//! Classifier heads: what follows the backbone's pooled features (ResNet's `fc`, VGG's
//! `classifier`), read from the checkpoint's tensors as a chain of Linear and BatchNorm1d
//! layers with activations between them ([`Head`]), or stated by the user ([`HeadLayout`],
//! the CLI's `--head`).
//!
//! A head is whatever the tensors under its prefix say: one Linear (`fc.weight`), or a torch
//! `Sequential` whose indices may have gaps (`fc.0`/`fc.3`, `classifier.{0,2,4,6}`, `fc.1` after
//! a Dropout). Modules without weights leave gaps in the indices; by torchvision's convention a
//! gap between two layers is a ReLU (then Dropouts), and a gap before the first layer is a
//! Dropout. A head that cannot be read this way ([`HeadState::Unusable`]) costs nothing until
//! `logits` are asked for.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::checkpoint::Entry;

/// An elementwise function between two layers of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `nn.ReLU`.
    Relu,
    /// `nn.GELU()`: the exact one, with `erf`.
    Gelu,
    /// `nn.GELU(approximate='tanh')`.
    GeluTanh,
    /// `nn.SiLU` (swish).
    Silu,
    /// `nn.Tanh`.
    Tanh,
    /// `nn.Sigmoid`.
    Sigmoid,
}

impl Activation {
    /// The name `--head` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Gelu => "gelu",
            Activation::GeluTanh => "gelu_tanh",
            Activation::Silu => "silu",
            Activation::Tanh => "tanh",
            Activation::Sigmoid => "sigmoid",
        }
    }

    /// torch's module name, for descriptions.
    fn torch_name(self) -> &'static str {
        match self {
            Activation::Relu => "ReLU",
            Activation::Gelu => "GELU",
            Activation::GeluTanh => "GELU(tanh)",
            Activation::Silu => "SiLU",
            Activation::Tanh => "Tanh",
            Activation::Sigmoid => "Sigmoid",
        }
    }
}

/// One index of a head's `Sequential`, as the user states it in a [`HeadLayout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadItem {
    /// `nn.Linear` (tensors `weight`, optional `bias`).
    Linear,
    /// `nn.BatchNorm1d` (tensors `running_mean`, `running_var`, and `weight`, `bias` if affine).
    BatchNorm,
    /// An activation (no tensors).
    Activation(Activation),
    /// `nn.Dropout`, or any module that is the identity at inference (`nn.Identity`,
    /// `nn.Flatten` after the pooled features).
    Dropout,
}

impl HeadItem {
    /// Whether the module has tensors in the checkpoint.
    fn has_weights(self) -> bool {
        matches!(self, HeadItem::Linear | HeadItem::BatchNorm)
    }

    /// The names `--head` accepts, for messages.
    pub const NAMES: &'static str = "linear, batchnorm (bn), relu, gelu, gelu_tanh, silu (swish), tanh, sigmoid, dropout (identity, flatten)";
}

impl FromStr for HeadItem {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "linear" => HeadItem::Linear,
            "batchnorm" | "batchnorm1d" | "bn" => HeadItem::BatchNorm,
            "relu" => HeadItem::Activation(Activation::Relu),
            "gelu" => HeadItem::Activation(Activation::Gelu),
            "gelu_tanh" => HeadItem::Activation(Activation::GeluTanh),
            "silu" | "swish" => HeadItem::Activation(Activation::Silu),
            "tanh" => HeadItem::Activation(Activation::Tanh),
            "sigmoid" => HeadItem::Activation(Activation::Sigmoid),
            "dropout" | "identity" | "flatten" => HeadItem::Dropout,
            other => {
                return Err(format!(
                    "unknown head module `{other}`; expected one of: {}",
                    HeadItem::NAMES
                ));
            }
        })
    }
}

/// A head stated by the user: one [`HeadItem`] per index of the `Sequential`, in order, e.g.
/// `linear,relu,linear,gelu,linear` for tensors at `fc.0`, `fc.2` and `fc.4`. A head that is a
/// single Linear (`fc.weight`, not `fc.0.weight`) is `linear`.
///
/// ```
/// use fmv_models::HeadLayout;
/// let layout: HeadLayout = "linear, relu, dropout, linear".parse().unwrap();
/// assert_eq!(layout.to_string(), "linear,relu,dropout,linear");
/// assert!("linear,softmax".parse::<HeadLayout>().unwrap_err().contains("softmax"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadLayout(pub Vec<HeadItem>);

impl FromStr for HeadLayout {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let items = s
            .split(',')
            .map(str::parse)
            .collect::<Result<Vec<HeadItem>, String>>()?;
        if !items.iter().any(|i| i.has_weights()) {
            return Err(format!(
                "a head needs at least one `linear` or `batchnorm`, got `{s}`"
            ));
        }
        Ok(HeadLayout(items))
    }
}

impl fmt::Display for HeadLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self
            .0
            .iter()
            .map(|i| match i {
                HeadItem::Linear => "linear",
                HeadItem::BatchNorm => "batchnorm",
                HeadItem::Activation(a) => a.as_str(),
                HeadItem::Dropout => "dropout",
            })
            .collect();
        f.write_str(&names.join(","))
    }
}

/// One module of a head, in forward order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadModule {
    /// A fully connected layer whose tensors are `{key}.weight` (`c_out×c_in`) and, if `bias`,
    /// `{key}.bias`.
    Linear {
        /// The module's key (`fc`, `classifier.0`).
        key: String,
        /// Input width.
        c_in: usize,
        /// Output width.
        c_out: usize,
        /// Whether it has a bias.
        bias: bool,
    },
    /// `BatchNorm1d` with inference statistics (folded into an adjacent Linear at load).
    BatchNorm {
        /// The module's key.
        key: String,
        /// Its width.
        channels: usize,
        /// Whether it has `weight` and `bias` (torch's `affine=True`).
        affine: bool,
    },
    /// An activation.
    Activation(Activation),
    /// A module that is the identity at inference (Dropout).
    Dropout,
}

/// A classifier head fmv can run: modules applied to the backbone's flattened pooled features.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The modules, in order.
    pub modules: Vec<HeadModule>,
}

impl Head {
    /// One Linear layer at `key` (ResNet's `fc`).
    pub fn linear(key: &str, c_in: usize, c_out: usize) -> Head {
        Head {
            modules: vec![HeadModule::Linear {
                key: key.into(),
                c_in,
                c_out,
                bias: true,
            }],
        }
    }

    /// torchvision's VGG classifier: `classifier.0` (`c_in → hidden1`), ReLU, Dropout,
    /// `classifier.3` (`→ hidden2`), ReLU, Dropout, `classifier.6` (`→ num_classes`).
    pub fn vgg(c_in: usize, hidden1: usize, hidden2: usize, num_classes: usize) -> Head {
        let linear = |i: usize, c_in, c_out| HeadModule::Linear {
            key: format!("classifier.{i}"),
            c_in,
            c_out,
            bias: true,
        };
        let gap = [
            HeadModule::Activation(Activation::Relu),
            HeadModule::Dropout,
        ];
        let mut modules = vec![linear(0, c_in, hidden1)];
        modules.extend(gap.clone());
        modules.push(linear(3, hidden1, hidden2));
        modules.extend(gap);
        modules.push(linear(6, hidden2, num_classes));
        Head { modules }
    }

    /// The width of the output: the number of classes.
    pub fn num_classes(&self) -> usize {
        self.modules
            .iter()
            .rev()
            .find_map(|m| match m {
                HeadModule::Linear { c_out, .. } => Some(*c_out),
                HeadModule::BatchNorm { channels, .. } => Some(*channels),
                _ => None,
            })
            .unwrap_or(0)
    }

    /// Every tensor the head needs, with its shape.
    pub fn expected_tensors(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        for m in &self.modules {
            match m {
                HeadModule::Linear {
                    key,
                    c_in,
                    c_out,
                    bias,
                } => {
                    out.push((format!("{key}.weight"), vec![*c_out, *c_in]));
                    if *bias {
                        out.push((format!("{key}.bias"), vec![*c_out]));
                    }
                }
                HeadModule::BatchNorm {
                    key,
                    channels,
                    affine,
                } => {
                    let params: &[&str] = if *affine {
                        &["weight", "bias", "running_mean", "running_var"]
                    } else {
                        &["running_mean", "running_var"]
                    };
                    for p in params {
                        out.push((format!("{key}.{p}"), vec![*channels]));
                    }
                }
                HeadModule::Activation(_) | HeadModule::Dropout => {}
            }
        }
        out
    }
}

impl fmt::Display for Head {
    /// `classifier.0 Linear(25088→64), ReLU, classifier.2 Linear(64→4)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .modules
            .iter()
            .map(|m| match m {
                HeadModule::Linear {
                    key,
                    c_in,
                    c_out,
                    bias,
                } => format!(
                    "{key} Linear({c_in}→{c_out}{})",
                    if *bias { "" } else { ", no bias" }
                ),
                HeadModule::BatchNorm { key, channels, .. } => {
                    format!("{key} BatchNorm1d({channels})")
                }
                HeadModule::Activation(a) => a.torch_name().to_string(),
                HeadModule::Dropout => "Dropout".to_string(),
            })
            .collect();
        f.write_str(&parts.join(", "))
    }
}

/// What a checkpoint's head is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadState {
    /// No tensors under the head's prefix: a headless checkpoint, without `logits`.
    Absent,
    /// A head fmv runs.
    Ready(Head),
    /// Tensors under the prefix that fmv cannot read as a head; `logits` are an error that
    /// says why, every feature map still works.
    Unusable {
        /// The head's prefix (`fc`, `classifier`).
        prefix: String,
        /// What could not be interpreted, and how to state the head.
        reason: String,
    },
}

impl HeadState {
    /// The head, if fmv can run it.
    pub fn ready(&self) -> Option<&Head> {
        match self {
            HeadState::Ready(h) => Some(h),
            _ => None,
        }
    }

    /// The number of classes of a head fmv can run.
    pub fn num_classes(&self) -> Option<usize> {
        self.ready().map(Head::num_classes)
    }
}

/// The features a head reads: their width, and how to say it in a message.
pub(crate) struct Features {
    /// Width of the flattened pooled features.
    pub width: usize,
    /// e.g. `512 maps × 7×7`.
    pub described: String,
}

/// The tensors of one module of the `Sequential`: parameter name → shape.
type Params<'a> = BTreeMap<&'a str, &'a [usize]>;

/// Reads the head under `prefix` from the checkpoint's entries, or follows `layout` when the
/// user stated it. Never fails: what cannot be read is [`HeadState::Unusable`].
pub(crate) fn infer(
    entries: &BTreeMap<String, Entry>,
    prefix: &str,
    features: &Features,
    layout: Option<&HeadLayout>,
) -> HeadState {
    let dotted = format!("{prefix}.");
    let keys: Vec<(&str, &[usize])> = entries
        .range(dotted.clone()..)
        .take_while(|(k, _)| k.starts_with(&dotted))
        .map(|(k, e)| (&k[dotted.len()..], e.shape.as_slice()))
        .collect();
    if keys.is_empty() {
        return HeadState::Absent;
    }
    let unusable = |reason: String| HeadState::Unusable {
        prefix: prefix.to_string(),
        reason,
    };
    // Either one module at the prefix itself (`fc.weight`) or a Sequential (`fc.0.weight`).
    let direct: Params = keys
        .iter()
        .filter(|(rest, _)| !rest.contains('.'))
        .map(|(rest, s)| (*rest, *s))
        .collect();
    let single = !direct.is_empty();
    let modules: Vec<(usize, String, Params)> = if single {
        if direct.len() != keys.len() {
            let nested = keys.iter().find(|(r, _)| r.contains('.')).map(|(r, _)| *r);
            return unusable(format!(
                "it holds both `{prefix}.{}` and `{prefix}.{}`: a single layer and a \
                 Sequential at once",
                direct.keys().next().copied().unwrap_or_default(),
                nested.unwrap_or_default()
            ));
        }
        vec![(0, prefix.to_string(), direct)]
    } else {
        let mut groups: BTreeMap<usize, Params> = BTreeMap::new();
        for (rest, shape) in &keys {
            let (index, param) = rest.split_once('.').unwrap_or((rest, ""));
            let Ok(index) = index.parse::<usize>() else {
                return unusable(format!(
                    "`{prefix}.{rest}` is not a layer of a Sequential (`{prefix}.N.weight`)"
                ));
            };
            if param.contains('.') {
                return unusable(format!(
                    "`{prefix}.{rest}` belongs to a module nested in the Sequential"
                ));
            }
            groups.entry(index).or_default().insert(param, shape);
        }
        groups
            .into_iter()
            .map(|(i, p)| (i, format!("{prefix}.{i}"), p))
            .collect()
    };

    // What each module with tensors is.
    let mut weighted = Vec::new();
    for (index, key, params) in modules {
        match module_of(&key, &params) {
            Ok(m) => weighted.push((index, m)),
            Err(reason) => return unusable(reason),
        }
    }

    // The modules without tensors, in the gaps.
    let sequence = match layout {
        Some(layout) => match follow_layout(prefix, &weighted, layout, single) {
            Ok(s) => s,
            Err(reason) => return unusable(reason),
        },
        None => by_convention(weighted),
    };
    match check_widths(&sequence, features) {
        Ok(()) => HeadState::Ready(Head { modules: sequence }),
        Err(reason) => unusable(reason),
    }
}

/// A Linear or a BatchNorm1d from its tensors, or why it is neither.
fn module_of(key: &str, params: &Params) -> Result<HeadModule, String> {
    let names: Vec<&str> = params.keys().copied().collect();
    let shape = |p: &str| params.get(p).copied();
    let listing = || {
        params
            .iter()
            .map(|(p, s)| format!("`{key}.{p}` {s:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let is_bn = names
        .iter()
        .any(|n| matches!(*n, "running_mean" | "running_var" | "num_batches_tracked"));
    if is_bn {
        let allowed = [
            "weight",
            "bias",
            "running_mean",
            "running_var",
            "num_batches_tracked",
        ];
        let channels = shape("running_mean")
            .or(shape("running_var"))
            .filter(|s| s.len() == 1)
            .map(|s| s[0]);
        let affine = shape("weight").is_some() || shape("bias").is_some();
        let vectors_agree = ["weight", "bias", "running_mean", "running_var"]
            .iter()
            .filter_map(|p| shape(p))
            .all(|s| Some(s) == channels.map(|c| [c]).as_ref().map(|a| a.as_slice()));
        let complete = shape("running_mean").is_some()
            && shape("running_var").is_some()
            && (!affine || (shape("weight").is_some() && shape("bias").is_some()));
        return match channels {
            Some(channels)
                if vectors_agree && complete && names.iter().all(|n| allowed.contains(n)) =>
            {
                Ok(HeadModule::BatchNorm {
                    key: key.to_string(),
                    channels,
                    affine,
                })
            }
            _ => Err(format!(
                "`{key}` looks like a BatchNorm1d but its tensors do not make one: {}",
                listing()
            )),
        };
    }
    match (shape("weight"), shape("bias"), names.len()) {
        (Some(w), bias, n) if w.len() == 2 && n == 1 + usize::from(bias.is_some()) => {
            if let Some(b) = bias
                && b != [w[0]]
            {
                return Err(format!(
                    "`{key}.bias` has shape {b:?}, and `{key}.weight` {w:?} needs [{}]",
                    w[0]
                ));
            }
            Ok(HeadModule::Linear {
                key: key.to_string(),
                c_in: w[1],
                c_out: w[0],
                bias: bias.is_some(),
            })
        }
        (None, Some(_), 1) => Err(format!(
            "`{key}.bias` has no `{key}.weight`: the Linear's weight is missing"
        )),
        (Some(w), _, _) if w.len() == 1 => Err(format!(
            "`{key}` ({}) has a vector weight without running statistics (a LayerNorm?)",
            listing()
        )),
        _ => Err(format!(
            "`{key}` ({}) is neither a Linear (a 2-D `weight`, optional `bias`) nor a \
             BatchNorm1d",
            listing()
        )),
    }
}

/// torchvision's convention for the modules without tensors: a gap between two layers is a
/// ReLU, then one Dropout per further index; a gap before the first layer is Dropouts.
fn by_convention(weighted: Vec<(usize, HeadModule)>) -> Vec<HeadModule> {
    let mut out = Vec::new();
    let mut next = 0;
    for (n, (index, module)) in weighted.into_iter().enumerate() {
        let gap = index.saturating_sub(next);
        if gap > 0 {
            if n > 0 {
                out.push(HeadModule::Activation(Activation::Relu));
                out.extend(std::iter::repeat_n(HeadModule::Dropout, gap - 1));
            } else {
                out.extend(std::iter::repeat_n(HeadModule::Dropout, gap));
            }
        }
        out.push(module);
        next = index + 1;
    }
    out
}

/// The user's layout, checked against the modules found: each `linear` or `batchnorm` must sit
/// where the file has one, and every module of the file must be named.
fn follow_layout(
    prefix: &str,
    weighted: &[(usize, HeadModule)],
    layout: &HeadLayout,
    direct: bool,
) -> Result<Vec<HeadModule>, String> {
    if direct {
        // A single module at the prefix: the layout must be exactly that module.
        let kinds: Vec<&HeadItem> = layout.0.iter().filter(|i| i.has_weights()).collect();
        let (_, module) = &weighted[0];
        let fits = kinds.len() == 1
            && matches!(
                (kinds[0], module),
                (HeadItem::Linear, HeadModule::Linear { .. })
                    | (HeadItem::BatchNorm, HeadModule::BatchNorm { .. })
            );
        if !fits || layout.0.len() != 1 {
            return Err(format!(
                "the file holds a single layer at `{prefix}`, whose layout is `{}`",
                if matches!(module, HeadModule::Linear { .. }) {
                    "linear"
                } else {
                    "batchnorm"
                }
            ));
        }
        return Ok(vec![module.clone()]);
    }
    let found: BTreeMap<usize, &HeadModule> = weighted.iter().map(|(i, m)| (*i, m)).collect();
    if let Some((&last, _)) = found.last_key_value()
        && last >= layout.0.len()
    {
        return Err(format!(
            "it names {} modules, and the file has a layer at `{prefix}.{last}`",
            layout.0.len()
        ));
    }
    let mut out = Vec::new();
    for (i, item) in layout.0.iter().enumerate() {
        match (item, found.get(&i)) {
            (HeadItem::Linear, Some(m @ HeadModule::Linear { .. }))
            | (HeadItem::BatchNorm, Some(m @ HeadModule::BatchNorm { .. })) => {
                out.push((*m).clone())
            }
            (HeadItem::Activation(a), None) => out.push(HeadModule::Activation(*a)),
            (HeadItem::Dropout, None) => out.push(HeadModule::Dropout),
            (item, Some(m)) => {
                return Err(format!(
                    "index {i} is `{}` in it, and the file has a {} at `{prefix}.{i}`",
                    HeadLayout(vec![*item]),
                    match m {
                        HeadModule::Linear { .. } => "Linear",
                        _ => "BatchNorm1d",
                    }
                ));
            }
            (item, None) => {
                return Err(format!(
                    "index {i} is `{}` in it, and the file has no tensors at `{prefix}.{i}`",
                    HeadLayout(vec![*item])
                ));
            }
        }
    }
    Ok(out)
}

/// Each layer must take the width the one before it gives, starting from the features.
fn check_widths(modules: &[HeadModule], features: &Features) -> Result<(), String> {
    let mut width = features.width;
    let mut from = format!("the pooled features give {}", features.described);
    for m in modules {
        match m {
            HeadModule::Linear {
                key, c_in, c_out, ..
            } => {
                if *c_in != width {
                    return Err(format!("`{key}.weight` takes {c_in} inputs, and {from}"));
                }
                width = *c_out;
                from = format!("`{key}` gives {c_out}");
            }
            HeadModule::BatchNorm { key, channels, .. } => {
                if *channels != width {
                    return Err(format!(
                        "`{key}` normalises {channels} channels, and {from}"
                    ));
                }
                from = format!("`{key}` gives {width}");
            }
            HeadModule::Activation(_) | HeadModule::Dropout => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    /// A key and its shape.
    type Key<'a> = (&'a str, &'a [usize]);

    fn entries(keys: &[Key]) -> BTreeMap<String, Entry> {
        keys.iter()
            .map(|(k, s)| {
                (
                    k.to_string(),
                    Entry {
                        file_key: k.to_string(),
                        shape: s.to_vec(),
                        dtype: DType::F32,
                    },
                )
            })
            .collect()
    }

    fn features(width: usize) -> Features {
        Features {
            width,
            described: format!("{width}"),
        }
    }

    fn linear(key: &str, c_in: usize, c_out: usize) -> HeadModule {
        HeadModule::Linear {
            key: key.into(),
            c_in,
            c_out,
            bias: true,
        }
    }

    const RELU: HeadModule = HeadModule::Activation(Activation::Relu);

    #[test]
    fn gaps_follow_torchvisions_convention() {
        let e = entries(&[
            ("fc.1.weight", &[8, 16]),
            ("fc.1.bias", &[8]),
            ("fc.4.weight", &[2, 8]),
            ("fc.4.bias", &[2]),
        ]);
        let HeadState::Ready(head) = infer(&e, "fc", &features(16), None) else {
            panic!()
        };
        assert_eq!(
            head.modules,
            [
                HeadModule::Dropout,
                linear("fc.1", 16, 8),
                RELU,
                HeadModule::Dropout,
                linear("fc.4", 8, 2)
            ]
        );
        assert_eq!(head.num_classes(), 2);
    }

    #[test]
    fn a_stated_layout_replaces_the_convention_and_must_fit() {
        let e = entries(&[
            ("fc.0.weight", &[8, 16]),
            ("fc.0.bias", &[8]),
            ("fc.2.weight", &[2, 8]),
        ]);
        let layout: HeadLayout = "linear,gelu,linear".parse().unwrap();
        let HeadState::Ready(head) = infer(&e, "fc", &features(16), Some(&layout)) else {
            panic!()
        };
        assert_eq!(head.modules[1], HeadModule::Activation(Activation::Gelu));
        assert_eq!(
            head.modules[2],
            HeadModule::Linear {
                key: "fc.2".into(),
                c_in: 8,
                c_out: 2,
                bias: false
            }
        );
        let wrong: HeadLayout = "linear,linear,linear".parse().unwrap();
        let HeadState::Unusable { reason, .. } = infer(&e, "fc", &features(16), Some(&wrong))
        else {
            panic!()
        };
        assert!(reason.contains("index 1 is `linear`"), "{reason}");
    }

    #[test]
    fn what_cannot_be_read_is_named() {
        let cases: &[(&[Key], &str)] = &[
            (&[("fc.0.weight", &[8]), ("fc.0.bias", &[8])], "LayerNorm"),
            (&[("fc.0.bias", &[8])], "`fc.0.bias` has no `fc.0.weight`"),
            (&[("fc.0.weight", &[8, 15])], "takes 15 inputs"),
            (&[("fc.head.weight", &[8, 16])], "`fc.head.weight`"),
            (&[("fc.0.0.weight", &[8, 16])], "nested"),
        ];
        for (keys, needle) in cases {
            match infer(&entries(keys), "fc", &features(16), None) {
                HeadState::Unusable { reason, .. } => {
                    assert!(reason.contains(needle), "{reason} lacks {needle}")
                }
                other => panic!("{keys:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn batch_norm_layers_are_recognised() {
        let e = entries(&[
            ("fc.0.weight", &[8, 16]),
            ("fc.1.weight", &[8]),
            ("fc.1.bias", &[8]),
            ("fc.1.running_mean", &[8]),
            ("fc.1.running_var", &[8]),
            ("fc.1.num_batches_tracked", &[]),
            ("fc.3.weight", &[2, 8]),
            ("fc.3.bias", &[2]),
        ]);
        let HeadState::Ready(head) = infer(&e, "fc", &features(16), None) else {
            panic!()
        };
        assert_eq!(
            head.to_string(),
            "fc.0 Linear(16→8, no bias), fc.1 BatchNorm1d(8), ReLU, fc.3 Linear(8→2)"
        );
    }
}
