//! Architectures: what a ResNet or VGG checkpoint holds, inferred from its keys and shapes
//! ([`Arch::infer`]), and the exact list of tensors each architecture needs
//! ([`Arch::expected_tensors`]), so that every key of a file is checked.

use std::collections::BTreeMap;
use std::fmt;

use crate::checkpoint::Entry;
use crate::head::{self, Features, HeadLayout, HeadState};

/// The residual block type of a ResNet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// Two 3×3 convolutions (ResNet18/34).
    Basic,
    /// 1×1, 3×3, 1×1 convolutions, stride on the 3×3 ("v1.5", ResNet50/101/152).
    Bottleneck,
}

/// One residual stage (`layerS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// Number of blocks.
    pub n_blocks: usize,
    /// Width of the block's inner convolutions (Bottleneck) or of both convolutions (Basic).
    pub inner: usize,
    /// Width of the block's output.
    pub out: usize,
    /// Stride of the first block (1 for `layer1`, 2 after).
    pub stride: usize,
}

/// A torchvision ResNet of any depth and width.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResNetConfig {
    /// Block type.
    pub block: BlockKind,
    /// Output width of the 7×7 stem convolution `conv1`.
    pub stem_width: usize,
    /// The stages `layer1`, `layer2`, ...
    pub stages: Vec<Stage>,
    /// Groups of the 3×3 convolutions (ResNeXt); 1 for ResNet.
    pub groups: usize,
    /// The classifier `fc` (one Linear in torchvision's; any chain in a fine-tuned one).
    pub head: HeadState,
}

/// One item of VGG's `features`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VggItem {
    /// A 3×3 convolution at `features.{index}` (then BatchNorm at `index + 1` if any, then
    /// ReLU).
    Conv {
        /// Index in `features`.
        index: usize,
        /// Input channels.
        c_in: usize,
        /// Output channels.
        c_out: usize,
    },
    /// A 2×2 stride-2 max pool at `features.{index}`.
    Pool {
        /// Index in `features`.
        index: usize,
    },
}

/// A torchvision VGG of any configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VggConfig {
    /// The convolutions and pools of `features`, in order.
    pub features: Vec<VggItem>,
    /// Whether every convolution is followed by BatchNorm (`vgg16_bn`).
    pub batch_norm: bool,
    /// The classifier `classifier` (torchvision's three Linear layers, or any chain).
    pub head: HeadState,
}

/// A network architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arch {
    /// A ResNet.
    ResNet(ResNetConfig),
    /// A VGG.
    Vgg(VggConfig),
}

/// The architecture names `--arch` accepts.
pub const ARCH_NAMES: &[&str] = &[
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "vgg11",
    "vgg11_bn",
    "vgg13",
    "vgg13_bn",
    "vgg16",
    "vgg16_bn",
    "vgg19",
    "vgg19_bn",
];

const RESNET_DEPTHS: &[(BlockKind, [usize; 4], &str)] = &[
    (BlockKind::Basic, [2, 2, 2, 2], "resnet18"),
    (BlockKind::Basic, [3, 4, 6, 3], "resnet34"),
    (BlockKind::Bottleneck, [3, 4, 6, 3], "resnet50"),
    (BlockKind::Bottleneck, [3, 4, 23, 3], "resnet101"),
    (BlockKind::Bottleneck, [3, 8, 36, 3], "resnet152"),
];

const VGG_CONFIGS: &[([usize; 5], &str)] = &[
    ([1, 1, 2, 2, 2], "vgg11"),
    ([2, 2, 2, 2, 2], "vgg13"),
    ([2, 2, 3, 3, 3], "vgg16"),
    ([2, 2, 4, 4, 4], "vgg19"),
];

impl ResNetConfig {
    /// The depth name (`resnet50`), or `resnet-custom` for a block layout torchvision lacks.
    pub fn depth_name(&self) -> String {
        let blocks: Vec<usize> = self.stages.iter().map(|s| s.n_blocks).collect();
        RESNET_DEPTHS
            .iter()
            .find(|(k, b, _)| *k == self.block && blocks == b)
            .map(|(_, _, n)| n.to_string())
            .unwrap_or_else(|| "resnet-custom".into())
    }

    /// The torchvision widths for this block type: stem 64, inner 64·2^s.
    fn is_standard_width(&self) -> bool {
        let exp = match self.block {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck => 4,
        };
        self.stem_width == 64
            && self.groups == 1
            && self
                .stages
                .iter()
                .enumerate()
                .all(|(s, st)| st.inner == 64 << s && st.out == (64 << s) * exp)
    }
}

impl VggConfig {
    /// The depth name (`vgg16`, `vgg16_bn`), or `vgg-custom`.
    pub fn depth_name(&self) -> String {
        let mut per_block = Vec::new();
        let mut n = 0;
        for item in &self.features {
            match item {
                VggItem::Conv { .. } => n += 1,
                VggItem::Pool { .. } => {
                    per_block.push(n);
                    n = 0;
                }
            }
        }
        if n > 0 {
            per_block.push(n);
        }
        let base = VGG_CONFIGS
            .iter()
            .find(|(c, _)| per_block == c)
            .map(|(_, n)| n.to_string())
            .unwrap_or_else(|| "vgg-custom".into());
        if self.batch_norm {
            format!("{base}_bn")
        } else {
            base
        }
    }

    /// The convolutions of `features`, in order: `(index, c_in, c_out)`.
    pub fn convs(&self) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
        self.features.iter().filter_map(|it| match *it {
            VggItem::Conv { index, c_in, c_out } => Some((index, c_in, c_out)),
            VggItem::Pool { .. } => None,
        })
    }

    fn is_standard_width(&self) -> bool {
        let mut expected = 64;
        let mut ok = true;
        for item in &self.features {
            match item {
                VggItem::Conv { c_out, .. } => ok &= *c_out == expected,
                VggItem::Pool { .. } => expected = (expected * 2).min(512),
            }
        }
        ok
    }
}

impl Arch {
    /// The depth name: `resnet50`, `vgg16_bn`, ... (widths aside; see [`Arch::description`]).
    pub fn name(&self) -> String {
        match self {
            Arch::ResNet(c) => c.depth_name(),
            Arch::Vgg(c) => c.depth_name(),
        }
    }

    /// The name plus what differs from torchvision's standard network, e.g.
    /// `resnet50 (narrow: stem width 8, 2 classes)`.
    pub fn description(&self) -> String {
        let mut notes = Vec::new();
        match self {
            Arch::ResNet(c) => {
                if !c.is_standard_width() {
                    let inner: Vec<String> = c.stages.iter().map(|s| s.inner.to_string()).collect();
                    let out: Vec<String> = c.stages.iter().map(|s| s.out.to_string()).collect();
                    notes.push(format!(
                        "widths: stem {}, inner {}, out {}{}",
                        c.stem_width,
                        inner.join("/"),
                        out.join("/"),
                        if c.groups > 1 {
                            format!(", {} groups", c.groups)
                        } else {
                            String::new()
                        }
                    ));
                }
                notes.push(head_note(&c.head));
            }
            Arch::Vgg(c) => {
                if !c.is_standard_width() {
                    let w: Vec<String> = c.convs().map(|(_, _, o)| o.to_string()).collect();
                    notes.push(format!("conv widths {}", w.join("/")));
                }
                notes.push(head_note(&c.head));
            }
        }
        format!("{} ({})", self.name(), notes.join(", "))
    }

    /// Infers the architecture from a checkpoint's canonical keys and shapes; `None` if the
    /// tensors form neither a ResNet nor a VGG. The head is read by torchvision's convention
    /// (see [`Arch::infer_with_head`]).
    pub fn infer(entries: &BTreeMap<String, Entry>) -> Option<Arch> {
        Self::infer_with_head(entries, None)
    }

    /// [`Arch::infer`], with the head's modules as the user stated them (`--head`) instead of
    /// torchvision's convention for the modules without tensors.
    pub fn infer_with_head(
        entries: &BTreeMap<String, Entry>,
        layout: Option<&HeadLayout>,
    ) -> Option<Arch> {
        let shape = |k: &str| entries.get(k).map(|e| e.shape.as_slice());
        let has_prefix = |p: &str| has_prefix(entries, p);
        // A stem (either of its tensors) and a first block: a ResNet, whose missing tensors
        // the check names.
        let resnet = (has_prefix("conv1.") || has_prefix("bn1.")) && has_prefix("layer1.0.");
        if resnet {
            infer_resnet(entries, &shape, layout).map(Arch::ResNet)
        } else if has_prefix("features.0.") {
            infer_vgg(entries, &shape, layout).map(Arch::Vgg)
        } else {
            None
        }
    }

    /// Every tensor the architecture needs, with its canonical name and shape, in forward
    /// order. BatchNorm's `num_batches_tracked` is optional and not listed.
    pub fn expected_tensors(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        match self {
            Arch::ResNet(c) => {
                out.push(("conv1.weight".into(), vec![c.stem_width, 3, 7, 7]));
                push_bn(&mut out, "bn1", c.stem_width);
                let mut c_in = c.stem_width;
                for (s, st) in c.stages.iter().enumerate() {
                    for b in 0..st.n_blocks {
                        let p = format!("layer{}.{b}", s + 1);
                        let (bin, stride) = if b == 0 {
                            (c_in, st.stride)
                        } else {
                            (st.out, 1)
                        };
                        match c.block {
                            BlockKind::Basic => {
                                out.push((format!("{p}.conv1.weight"), vec![st.out, bin, 3, 3]));
                                push_bn(&mut out, &format!("{p}.bn1"), st.out);
                                out.push((format!("{p}.conv2.weight"), vec![st.out, st.out, 3, 3]));
                                push_bn(&mut out, &format!("{p}.bn2"), st.out);
                            }
                            BlockKind::Bottleneck => {
                                out.push((format!("{p}.conv1.weight"), vec![st.inner, bin, 1, 1]));
                                push_bn(&mut out, &format!("{p}.bn1"), st.inner);
                                out.push((
                                    format!("{p}.conv2.weight"),
                                    vec![st.inner, st.inner / c.groups, 3, 3],
                                ));
                                push_bn(&mut out, &format!("{p}.bn2"), st.inner);
                                out.push((
                                    format!("{p}.conv3.weight"),
                                    vec![st.out, st.inner, 1, 1],
                                ));
                                push_bn(&mut out, &format!("{p}.bn3"), st.out);
                            }
                        }
                        if b == 0 && (stride != 1 || bin != st.out) {
                            out.push((format!("{p}.downsample.0.weight"), vec![st.out, bin, 1, 1]));
                            push_bn(&mut out, &format!("{p}.downsample.1"), st.out);
                        }
                    }
                    c_in = st.out;
                }
                if let Some(h) = c.head.ready() {
                    out.extend(h.expected_tensors());
                }
            }
            Arch::Vgg(c) => {
                for (index, c_in, c_out) in c.convs() {
                    out.push((format!("features.{index}.weight"), vec![c_out, c_in, 3, 3]));
                    out.push((format!("features.{index}.bias"), vec![c_out]));
                    if c.batch_norm {
                        push_bn(&mut out, &format!("features.{}", index + 1), c_out);
                    }
                }
                if let Some(h) = c.head.ready() {
                    out.extend(h.expected_tensors());
                }
            }
        }
        out
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

fn push_bn(out: &mut Vec<(String, Vec<usize>)>, prefix: &str, c: usize) {
    for p in ["weight", "bias", "running_mean", "running_var"] {
        out.push((format!("{prefix}.{p}"), vec![c]));
    }
}

/// Whether some key starts with `prefix` (the keys are sorted: one lookup).
fn has_prefix(entries: &BTreeMap<String, Entry>, prefix: &str) -> bool {
    entries
        .range(prefix.to_string()..)
        .next()
        .is_some_and(|(k, _)| k.starts_with(prefix))
}

fn infer_resnet<'a>(
    entries: &BTreeMap<String, Entry>,
    shape: &dyn Fn(&str) -> Option<&'a [usize]>,
    layout: Option<&HeadLayout>,
) -> Option<ResNetConfig> {
    // Widths are read from whichever tensor of a layer the file has (a file may lack one, or
    // say anything: the shapes are checked in full, and missing tensors named, once the
    // architecture is known). `width(k, d)`: dimension `d` of a 4-D weight, or the length of
    // a BatchNorm vector (for `d == 0`).
    let width = |k: &str, d: usize| match shape(k) {
        Some(s) if s.len() == 4 => Some(s[d]),
        Some(s) if s.len() == 1 && d == 0 => Some(s[0]),
        _ => None,
    };
    let first = |candidates: &[(String, usize)]| candidates.iter().find_map(|(k, d)| width(k, *d));
    let has_prefix = |p: &str| has_prefix(entries, p);
    let stem = first(&[
        ("conv1.weight".into(), 0),
        ("bn1.weight".into(), 0),
        ("layer1.0.conv1.weight".into(), 1),
    ])?;
    let block = if has_prefix("layer1.0.conv3.") || has_prefix("layer1.0.bn3.") {
        BlockKind::Bottleneck
    } else {
        BlockKind::Basic
    };
    let mut stages = Vec::new();
    let mut groups = 1;
    for s in 1.. {
        let mut n_blocks = 0;
        while has_prefix(&format!("layer{s}.{n_blocks}.")) {
            n_blocks += 1;
        }
        if n_blocks == 0 {
            break;
        }
        let p = |b: usize, rest: &str| format!("layer{s}.{b}.{rest}");
        let inner = first(&[
            (p(0, "conv1.weight"), 0),
            (p(0, "bn1.weight"), 0),
            (p(0, "bn1.running_mean"), 0),
            (p(1, "conv1.weight"), 0),
            (p(1, "bn1.weight"), 0),
        ])?;
        let out = match block {
            BlockKind::Basic => first(&[
                (p(0, "conv2.weight"), 0),
                (p(0, "bn2.weight"), 0),
                (p(0, "bn2.running_mean"), 0),
                (p(1, "conv2.weight"), 0),
                (p(1, "conv1.weight"), 1),
            ])
            .unwrap_or(inner),
            BlockKind::Bottleneck => {
                if let Some(c2) = (0..n_blocks)
                    .find_map(|b| shape(&p(b, "conv2.weight")).filter(|c| c.len() == 4))
                    && c2[1] > 0
                    && c2[0] % c2[1] == 0
                {
                    groups = c2[0] / c2[1];
                }
                first(&[
                    (p(0, "conv3.weight"), 0),
                    (p(0, "bn3.weight"), 0),
                    (p(0, "bn3.running_mean"), 0),
                    (p(0, "downsample.0.weight"), 0),
                    (p(1, "conv3.weight"), 0),
                    (p(1, "conv1.weight"), 1),
                ])?
            }
        };
        stages.push(Stage {
            n_blocks,
            inner,
            out,
            stride: if s == 1 { 1 } else { 2 },
        });
    }
    let last = stages.last()?.out;
    let features = Features {
        width: last,
        described: format!("{last} (the last stage's width, averaged over its grid)"),
    };
    Some(ResNetConfig {
        block,
        stem_width: stem,
        stages,
        groups,
        head: head::infer(entries, RESNET_HEAD, &features, layout),
    })
}

fn infer_vgg<'a>(
    entries: &BTreeMap<String, Entry>,
    shape: &dyn Fn(&str) -> Option<&'a [usize]>,
    layout: Option<&HeadLayout>,
) -> Option<VggConfig> {
    // The indices of `features` that carry tensors.
    let mut indices: Vec<usize> = entries
        .keys()
        .filter_map(|k| k.strip_prefix("features.")?.split('.').next()?.parse().ok())
        .collect();
    indices.sort_unstable();
    indices.dedup();
    let key = |i: usize, p: &str| format!("features.{i}.{p}");
    let is_bn = |i: usize| {
        ["running_mean", "running_var", "num_batches_tracked"]
            .iter()
            .any(|p| shape(&key(i, p)).is_some())
    };
    let batch_norm = indices.iter().any(|&i| is_bn(i));
    // A convolution: a 4-D weight, or (its weight missing, which the check names) a bias at an
    // index that is not a BatchNorm.
    let conv_at = |i: usize| match shape(&key(i, "weight")) {
        Some(w) => w.len() == 4,
        None => shape(&key(i, "bias")).is_some_and(|b| b.len() == 1) && !is_bn(i),
    };
    let last = *indices.last()?;
    let mut features = Vec::new();
    let mut c_prev = 3;
    let mut i = 0;
    while i <= last {
        if conv_at(i) {
            let (c_in, c_out) = match shape(&key(i, "weight")) {
                Some(w) => (w[1], w[0]),
                None => (c_prev, shape(&key(i, "bias"))?[0]),
            };
            features.push(VggItem::Conv {
                index: i,
                c_in,
                c_out,
            });
            c_prev = c_out;
            i += if batch_norm { 3 } else { 2 };
        } else {
            // A pool, or tensors that are not a convolution where one would be: the check names
            // them as unexpected.
            features.push(VggItem::Pool { index: i });
            i += 1;
        }
    }
    if !features.iter().any(|f| matches!(f, VggItem::Conv { .. })) {
        return None;
    }
    // torchvision's `features` always ends with a pool after the last ReLU.
    features.push(VggItem::Pool { index: i });
    let grid = crate::vgg::HEAD_GRID;
    let head_features = Features {
        width: c_prev * grid * grid,
        described: format!(
            "{} ({c_prev} maps × {grid}×{grid}, torchvision's adaptive pool)",
            c_prev * grid * grid
        ),
    };
    Some(VggConfig {
        features,
        batch_norm,
        head: head::infer(entries, VGG_HEAD, &head_features, layout),
    })
}

/// Where a ResNet's head is (torchvision's and timm's `fc`).
pub(crate) const RESNET_HEAD: &str = "fc";
/// Where a VGG's head is (torchvision's `classifier`; timm's are renamed to it).
pub(crate) const VGG_HEAD: &str = "classifier";

/// `4 classes`, `no classifier`, or `head `fc` not usable`, for descriptions.
fn head_note(head: &HeadState) -> String {
    match head {
        HeadState::Absent => "no classifier".into(),
        HeadState::Ready(h) => format!("{} classes", h.num_classes()),
        HeadState::Unusable { prefix, .. } => format!("head `{prefix}` not interpreted"),
    }
}

impl Arch {
    /// The head, whatever its state.
    pub fn head(&self) -> &HeadState {
        match self {
            Arch::ResNet(c) => &c.head,
            Arch::Vgg(c) => &c.head,
        }
    }

    /// Where the head's tensors are: `fc` or `classifier`.
    pub fn head_prefix(&self) -> &'static str {
        match self {
            Arch::ResNet(_) => RESNET_HEAD,
            Arch::Vgg(_) => VGG_HEAD,
        }
    }

    /// This architecture with the depth `name` (`resnet50`, `vgg16_bn`) in place of its own,
    /// the widths kept: what a file missing whole blocks or layers was meant to be, so that the
    /// check names what is missing. `None` if `name` is another family or block type.
    pub fn with_depth(&self, name: &str) -> Option<Arch> {
        match self {
            Arch::ResNet(c) => {
                let (block, blocks, _) = RESNET_DEPTHS.iter().find(|(_, _, n)| *n == name)?;
                if *block != c.block || blocks.len() != c.stages.len() {
                    return None;
                }
                let stages = c
                    .stages
                    .iter()
                    .zip(blocks)
                    .map(|(st, &n_blocks)| Stage {
                        n_blocks,
                        ..st.clone()
                    })
                    .collect();
                Some(Arch::ResNet(ResNetConfig {
                    stages,
                    ..c.clone()
                }))
            }
            Arch::Vgg(c) => {
                let (base, bn) = match name.strip_suffix("_bn") {
                    Some(b) => (b, true),
                    None => (name, false),
                };
                let (per_block, _) = VGG_CONFIGS.iter().find(|(_, n)| *n == base)?;
                if bn != c.batch_norm {
                    return None;
                }
                // Convolutions of one block share a width: take it from any the file has.
                let found: BTreeMap<usize, usize> =
                    c.convs().map(|(index, _, c_out)| (index, c_out)).collect();
                let step = if bn { 3 } else { 2 };
                let mut features = Vec::new();
                let (mut index, mut c_in, mut standard) = (0, 3, 64);
                for &n in per_block {
                    let width = (index..index + n * step)
                        .step_by(step)
                        .find_map(|i| found.get(&i).copied())
                        .unwrap_or(standard);
                    for _ in 0..n {
                        features.push(VggItem::Conv {
                            index,
                            c_in,
                            c_out: width,
                        });
                        c_in = width;
                        index += step;
                    }
                    features.push(VggItem::Pool { index });
                    index += 1;
                    standard = (standard * 2).min(512);
                }
                Some(Arch::Vgg(VggConfig {
                    features,
                    ..c.clone()
                }))
            }
        }
    }
}

/// Output size of a convolution or pool along one axis, `None` if the input is too small.
pub(crate) fn conv_out(n: usize, k: usize, s: usize, p: usize) -> Option<usize> {
    (n + 2 * p).checked_sub(k).map(|d| d / s + 1)
}
