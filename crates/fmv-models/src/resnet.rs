//! torchvision's ResNet (BasicBlock and Bottleneck, any depth and width) with a tap after the
//! stem, the stem pool, every block and stage, the global pool and the classifier.

use candle_core::Tensor;
use fmv_kernels::{Conv2d, Tile, max_pool2d, residual_with};

use crate::arch::{BlockKind, ResNetConfig, conv_out};
use crate::checkpoint::Checkpoint;
use crate::error::Result;
use crate::layer::{LayerInfo, LayerKind};
use crate::ops::{Build, ConvSpec, load_conv};
use crate::taps::Tapper;

enum Block {
    Basic {
        conv1: Conv2d,
        conv2: Conv2d,
        downsample: Option<Conv2d>,
    },
    Bottleneck {
        conv1: Conv2d,
        conv2: Conv2d,
        conv3: Conv2d,
        downsample: Option<Conv2d>,
    },
}

impl Block {
    fn tensors(&self) -> Vec<&Tensor> {
        let (main, shortcut) = self.convs();
        main.into_iter()
            .chain(shortcut)
            .flat_map(Conv2d::tensors)
            .collect()
    }

    /// The convolutions of the main branch in order, and the shortcut's.
    fn convs(&self) -> (Vec<&Conv2d>, Option<&Conv2d>) {
        match self {
            Block::Basic {
                conv1,
                conv2,
                downsample,
            } => (vec![conv1, conv2], downsample.as_ref()),
            Block::Bottleneck {
                conv1,
                conv2,
                conv3,
                downsample,
            } => (vec![conv1, conv2, conv3], downsample.as_ref()),
        }
    }

    /// The block; a tracked input's 3×3 convolutions take Winograd tiles up to
    /// `tracked_tile`.
    fn forward(&self, x: &Tensor, tracked_tile: Tile) -> candle_core::Result<Tensor> {
        let (main, shortcut) = self.convs();
        residual_with(x, &main, shortcut, tracked_tile)
    }
}

/// The network's backbone (everything before `fc`).
pub(crate) struct ResNet {
    stem: Conv2d,
    stages: Vec<Vec<Block>>,
}

impl ResNet {
    pub fn load(ck: &Checkpoint, config: &ResNetConfig, build: Build<'_>) -> Result<Self> {
        let conv = |w: &str, bn: &str, stride, padding, groups| {
            load_conv(
                ck,
                &ConvSpec {
                    weight: w,
                    bias: None,
                    batch_norm: Some(bn),
                    stride,
                    padding,
                    groups,
                },
                build,
            )
        };
        let stem = conv("conv1.weight", "bn1", 2, 3, 1)?;
        let mut stages = Vec::new();
        let mut c_in = config.stem_width;
        for (s, st) in config.stages.iter().enumerate() {
            let mut blocks = Vec::new();
            for b in 0..st.n_blocks {
                let p = format!("layer{}.{b}", s + 1);
                let (bin, stride) = if b == 0 {
                    (c_in, st.stride)
                } else {
                    (st.out, 1)
                };
                let downsample = if b == 0 && (stride != 1 || bin != st.out) {
                    Some(conv(
                        &format!("{p}.downsample.0.weight"),
                        &format!("{p}.downsample.1"),
                        stride,
                        0,
                        1,
                    )?)
                } else {
                    None
                };
                let c = |i: usize, stride, padding, groups| {
                    conv(
                        &format!("{p}.conv{i}.weight"),
                        &format!("{p}.bn{i}"),
                        stride,
                        padding,
                        groups,
                    )
                };
                blocks.push(match config.block {
                    BlockKind::Basic => Block::Basic {
                        conv1: c(1, stride, 1, 1)?,
                        conv2: c(2, 1, 1, 1)?,
                        downsample,
                    },
                    BlockKind::Bottleneck => Block::Bottleneck {
                        conv1: c(1, 1, 0, 1)?,
                        conv2: c(2, stride, 1, config.groups)?,
                        conv3: c(3, 1, 0, 1)?,
                        downsample,
                    },
                });
            }
            stages.push(blocks);
            c_in = st.out;
        }
        Ok(ResNet { stem, stages })
    }

    /// Every tensor the backbone computes with.
    pub fn tensors(&self) -> Vec<&Tensor> {
        let mut out = self.stem.tensors();
        for b in self.stages.iter().flatten() {
            out.extend(b.tensors());
        }
        out
    }

    /// The taps of the backbone, in forward order (the caller appends `logits`).
    pub fn layers(config: &ResNetConfig) -> Vec<LayerInfo> {
        let info = |name: String, kind, channels| LayerInfo {
            name,
            kind,
            channels,
        };
        let mut out = vec![
            info("conv1".into(), LayerKind::Conv, config.stem_width),
            info("maxpool".into(), LayerKind::Pool, config.stem_width),
        ];
        for (s, st) in config.stages.iter().enumerate() {
            for b in 0..st.n_blocks {
                out.push(info(
                    format!("layer{}.{b}", s + 1),
                    LayerKind::Block,
                    st.out,
                ));
            }
            out.push(info(format!("layer{}", s + 1), LayerKind::Stage, st.out));
        }
        let last = config.stages.last().map_or(config.stem_width, |s| s.out);
        out.push(info("avgpool".into(), LayerKind::AvgPool, last));
        out
    }

    /// Spatial size of each backbone tap for an input of `h`×`w` (`None` where it would be
    /// empty), in the order of [`ResNet::layers`].
    pub fn spatial_sizes(config: &ResNetConfig, h: usize, w: usize) -> Vec<Option<(usize, usize)>> {
        let step = |hw: Option<(usize, usize)>, k, s, p| {
            hw.and_then(|(h, w)| Some((conv_out(h, k, s, p)?, conv_out(w, k, s, p)?)))
                .filter(|&(h, w)| h > 0 && w > 0)
        };
        let mut hw = step(Some((h, w)), 7, 2, 3);
        let mut out = vec![hw];
        hw = step(hw, 3, 2, 1);
        out.push(hw);
        for st in &config.stages {
            hw = step(hw, 3, st.stride, 1);
            out.extend(std::iter::repeat_n(hw, st.n_blocks + 1));
        }
        out.push(hw.map(|_| (1, 1)));
        out
    }

    /// Runs the backbone (from the tap `taps` starts at), emitting every tap until `taps` has
    /// what it needs; returns the
    /// pooled features `(N, C)` if the pass went all the way.
    pub fn forward(
        &self,
        x: &Tensor,
        taps: &mut Tapper<'_>,
    ) -> candle_core::Result<Option<Tensor>> {
        let mut x = x.clone();
        if taps.computes() {
            x = self.stem.forward_relu_with(&x, taps.tracked_tile())?;
        }
        if taps.emit(&mut x)? {
            return Ok(None);
        }
        if taps.computes() {
            x = max_pool2d(&x, 3, 2, 1)?;
        }
        if taps.emit(&mut x)? {
            return Ok(None);
        }
        for blocks in &self.stages {
            for block in blocks {
                if taps.computes() {
                    x = block.forward(&x, taps.tracked_tile())?;
                }
                if taps.emit(&mut x)? {
                    return Ok(None);
                }
            }
            // The stage's tap is its last block's value.
            if taps.emit(&mut x)? {
                return Ok(None);
            }
        }
        if taps.computes() {
            x = x.mean_keepdim((2, 3))?;
        }
        if taps.emit(&mut x)? {
            return Ok(None);
        }
        Ok(Some(x.flatten_from(1)?))
    }
}
