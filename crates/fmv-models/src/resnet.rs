//! torchvision's ResNet (BasicBlock and Bottleneck, any depth and width) with a tap after the
//! stem, the stem pool, every block and stage, the global pool and the classifier.

use candle_core::{DType, Device, Module, Tensor};

use crate::arch::{BlockKind, ResNetConfig, conv_out};
use crate::checkpoint::Checkpoint;
use crate::cpu_block::Residual;
use crate::error::Result;
use crate::layer::{LayerInfo, LayerKind};
use crate::ops::{Conv, ConvSpec, Linear, add_relu, max_pool2d};
use crate::taps::Tapper;

enum Block {
    Basic {
        conv1: Conv,
        conv2: Conv,
        downsample: Option<Conv>,
    },
    Bottleneck {
        conv1: Conv,
        conv2: Conv,
        conv3: Conv,
        downsample: Option<Conv>,
    },
}

impl Block {
    fn tensors(&self) -> Vec<&Tensor> {
        let (main, shortcut) = self.convs();
        main.into_iter()
            .chain(shortcut)
            .flat_map(Conv::tensors)
            .collect()
    }

    /// The convolutions of the main branch in order, and the shortcut's.
    fn convs(&self) -> (Vec<&Conv>, Option<&Conv>) {
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

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (main, shortcut) = self.convs();
        if x.track_op() && main.iter().chain(shortcut.as_ref()).all(|c| c.runs_own(x)) {
            return self.forward_as_one_op(x, &main, shortcut);
        }
        self.forward_op_by_op(x)
    }

    /// The block as separate ops: inference, and tracked inputs off the CPU.
    fn forward_op_by_op(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (out, downsample) = match self {
            Block::Basic {
                conv1,
                conv2,
                downsample,
            } => {
                let y = conv1.forward_relu(x)?;
                (conv2.forward(&y)?, downsample)
            }
            Block::Bottleneck {
                conv1,
                conv2,
                conv3,
                downsample,
            } => {
                let y = conv1.forward_relu(x)?;
                let y = conv2.forward_relu(&y)?;
                (conv3.forward(&y)?, downsample)
            }
        };
        let identity = match downsample {
            Some(d) => d.forward(x)?,
            None => x.clone(),
        };
        add_relu(&out, &identity)
    }

    /// The block as one op whose backward pass gives the input's gradient ([`Residual`]): on
    /// the CPU, for a tracked input.
    fn forward_as_one_op(
        &self,
        x: &Tensor,
        main: &[&Conv],
        shortcut: Option<&Conv>,
    ) -> candle_core::Result<Tensor> {
        let x = x.contiguous()?;
        let (_, _, in_h, in_w) = x.dims4()?;
        let (mut h, mut w) = (in_h, in_w);
        let last = main.len() - 1;
        let mut ops = Vec::with_capacity(main.len());
        for (k, conv) in main.iter().enumerate() {
            ops.push(conv.op((h, w), true, k < last)?);
            (h, w) = conv.out_hw(h, w)?;
        }
        let shortcut = shortcut
            .map(|c| c.op((in_h, in_w), true, false))
            .transpose()?;
        x.apply_op1(Residual::new(ops, shortcut))
    }
}

/// The network's backbone (everything before `fc`).
pub(crate) struct ResNet {
    stem: Conv,
    stages: Vec<Vec<Block>>,
}

impl ResNet {
    pub fn load(
        ck: &Checkpoint,
        config: &ResNetConfig,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        let conv = |w: &str, bn: &str, stride, padding, groups| {
            Conv::load(
                ck,
                &ConvSpec {
                    weight: w,
                    bias: None,
                    batch_norm: Some(bn),
                    stride,
                    padding,
                    groups,
                },
                device,
                dtype,
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

    /// Runs the backbone, emitting every tap until `taps` has what it needs; returns the
    /// pooled features `(N, C)` if the pass went all the way.
    pub fn forward(
        &self,
        x: &Tensor,
        taps: &mut Tapper<'_>,
    ) -> candle_core::Result<Option<Tensor>> {
        let x = self.stem.forward_relu(x)?;
        if taps.emit(&x) {
            return Ok(None);
        }
        let mut x = max_pool2d(&x, 3, 2, 1)?;
        if taps.emit(&x) {
            return Ok(None);
        }
        for blocks in &self.stages {
            for block in blocks {
                x = block.forward(&x)?;
                if taps.emit(&x) {
                    return Ok(None);
                }
            }
            if taps.emit(&x) {
                return Ok(None);
            }
        }
        let pooled = x.mean_keepdim((2, 3))?;
        if taps.emit(&pooled) {
            return Ok(None);
        }
        Ok(Some(pooled.flatten_from(1)?))
    }
}

/// The classifier `fc`.
pub(crate) fn load_head(ck: &Checkpoint, device: &Device, dtype: DType) -> Result<Linear> {
    Linear::load(ck, "fc", device, dtype)
}

#[cfg(test)]
mod tests {
    //! The block as one op against the same block as separate ops (each with its own backward
    //! pass, as before the one op existed): the same output and the same input gradient, bit
    //! for bit, so that the one op changes no result.

    use candle_core::{DType, Tensor, Var};

    use super::Block;
    use crate::ops::Conv;
    use crate::test_data::{max_abs_diff, random};

    fn conv(c_in: usize, c_out: usize, k: usize, stride: usize, seed: u64, dtype: DType) -> Conv {
        let weight = (random(&[c_out, c_in, k, k], seed) * 0.5).unwrap();
        let bias = random(&[1, c_out, 1, 1], seed + 1);
        let (weight, bias) = (
            weight.to_dtype(dtype).unwrap(),
            bias.to_dtype(dtype).unwrap(),
        );
        Conv::from_parts(weight, Some(bias), stride, k / 2, 1).unwrap()
    }

    /// A first bottleneck block (strided 3×3, downsampling shortcut), a later one (Winograd
    /// 3×3, identity shortcut) and a basic block, with their input channels.
    fn blocks(dtype: DType) -> [(Block, usize); 3] {
        let c = |c_in, c_out, k, stride, seed| conv(c_in, c_out, k, stride, seed, dtype);
        [
            (
                Block::Bottleneck {
                    conv1: c(8, 4, 1, 1, 1),
                    conv2: c(4, 4, 3, 2, 3),
                    conv3: c(4, 16, 1, 1, 5),
                    downsample: Some(c(8, 16, 1, 2, 7)),
                },
                8,
            ),
            (
                Block::Bottleneck {
                    conv1: c(16, 4, 1, 1, 9),
                    conv2: c(4, 4, 3, 1, 11),
                    conv3: c(4, 16, 1, 1, 13),
                    downsample: None,
                },
                16,
            ),
            (
                Block::Basic {
                    conv1: c(8, 8, 3, 1, 15),
                    conv2: c(8, 8, 3, 1, 17),
                    downsample: None,
                },
                8,
            ),
        ]
    }

    fn f64s(t: &Tensor) -> Tensor {
        t.to_dtype(DType::F64).unwrap()
    }

    #[test]
    fn a_block_as_one_op_equals_its_ops_one_by_one() {
        for dtype in [DType::F32, DType::F64] {
            for (i, (block, c_in)) in blocks(dtype).iter().enumerate() {
                let x = random(&[2, *c_in, 10, 9], 20 + i as u64);
                let var = Var::from_tensor(&x.to_dtype(dtype).unwrap()).unwrap();
                let one = block.forward(var.as_tensor()).unwrap();
                let by_ops = block.forward_op_by_op(var.as_tensor()).unwrap();
                assert_eq!(
                    max_abs_diff(&f64s(&one), &f64s(&by_ops)),
                    0.0,
                    "block {i} {dtype:?}"
                );
                let dy = random(one.dims(), 30 + i as u64).to_dtype(dtype).unwrap();
                let dx = |y: &Tensor| {
                    let grads = (y * &dy).unwrap().sum_all().unwrap().backward().unwrap();
                    f64s(grads.get(var.as_tensor()).unwrap())
                };
                let (a, b) = (dx(&one), dx(&by_ops));
                let size = a
                    .abs()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f64>()
                    .unwrap();
                assert!(size > 0.0, "block {i} {dtype:?}: no gradient at all");
                assert_eq!(max_abs_diff(&a, &b), 0.0, "block {i} {dtype:?}");
            }
        }
    }
}
