//! torchvision's VGG (any configuration, with or without BatchNorm) with a tap after every
//! convolution's ReLU (`features.N`), every pool and the adaptive pool.

use candle_core::Tensor;
use fmv_kernels::{Conv2d, adaptive_avg_pool2d, max_pool2d};

use crate::arch::{VggConfig, VggItem, conv_out};
use crate::checkpoint::Checkpoint;
use crate::error::Result;
use crate::layer::{LayerInfo, LayerKind};
use crate::ops::{Build, ConvSpec, load_conv};
use crate::taps::{Tapper, select_channels};

/// The spatial size of torchvision's `AdaptiveAvgPool2d((7, 7))` before the classifier.
pub(crate) const HEAD_GRID: usize = 7;

enum Item {
    Conv(Conv2d),
    Pool,
}

/// The network's `features` and adaptive pool.
pub(crate) struct Vgg {
    items: Vec<Item>,
}

impl Vgg {
    pub fn load(ck: &Checkpoint, config: &VggConfig, build: Build<'_>) -> Result<Self> {
        let mut items = Vec::new();
        for item in &config.features {
            items.push(match *item {
                VggItem::Conv { index, .. } => {
                    let bn = format!("features.{}", index + 1);
                    Item::Conv(load_conv(
                        ck,
                        &ConvSpec {
                            weight: &format!("features.{index}.weight"),
                            bias: Some(&format!("features.{index}.bias")),
                            batch_norm: config.batch_norm.then_some(bn.as_str()),
                            stride: 1,
                            padding: 1,
                            groups: 1,
                        },
                        build,
                    )?)
                }
                VggItem::Pool { .. } => Item::Pool,
            });
        }
        Ok(Vgg { items })
    }

    /// Every tensor `features` computes with.
    pub fn tensors(&self) -> Vec<&Tensor> {
        self.items
            .iter()
            .flat_map(|i| match i {
                Item::Conv(c) => c.tensors(),
                Item::Pool => Vec::new(),
            })
            .collect()
    }

    /// The taps of `features` and the adaptive pool, in forward order.
    pub fn layers(config: &VggConfig) -> Vec<LayerInfo> {
        let mut out = Vec::new();
        let mut channels = 3;
        for item in &config.features {
            match *item {
                VggItem::Conv { index, c_out, .. } => {
                    channels = c_out;
                    out.push(LayerInfo {
                        name: format!("features.{index}"),
                        kind: LayerKind::Conv,
                        channels,
                    });
                }
                VggItem::Pool { index } => out.push(LayerInfo {
                    name: format!("features.{index}"),
                    kind: LayerKind::Pool,
                    channels,
                }),
            }
        }
        out.push(LayerInfo {
            name: "avgpool".into(),
            kind: LayerKind::AvgPool,
            channels,
        });
        out
    }

    /// Spatial size of each tap for an input of `h`×`w`, in the order of [`Vgg::layers`].
    pub fn spatial_sizes(config: &VggConfig, h: usize, w: usize) -> Vec<Option<(usize, usize)>> {
        let mut hw = Some((h, w));
        let mut out = Vec::new();
        for item in &config.features {
            if let VggItem::Pool { .. } = item {
                hw = hw
                    .and_then(|(h, w)| Some((conv_out(h, 2, 2, 0)?, conv_out(w, 2, 2, 0)?)))
                    .filter(|&(h, w)| h > 0 && w > 0);
            }
            out.push(hw);
        }
        out.push(hw.map(|_| (HEAD_GRID, HEAD_GRID)));
        out
    }

    /// Runs `features` and the adaptive pool (from the tap `taps` starts at), emitting every
    /// tap until `taps` has what it needs; returns the flattened `(N, C·7·7)` features if the pass went all the way.
    pub fn forward(
        &self,
        x: &Tensor,
        taps: &mut Tapper<'_>,
    ) -> candle_core::Result<Option<Tensor>> {
        let mut x = x.clone();
        for item in &self.items {
            if taps.computes() {
                // Only the channels the pass returns of its last tap, where it selects some.
                let kept = taps.narrowing();
                x = match (item, kept) {
                    (Item::Conv(c), None) => c.forward_relu_with(&x, taps.tracked_tile())?,
                    (Item::Conv(c), Some(kept)) => c
                        .with_out_channels(&kept)?
                        .forward_relu_with(&x, taps.tracked_tile())?,
                    (Item::Pool, None) => max_pool2d(&x, 2, 2, 0)?,
                    (Item::Pool, Some(kept)) => max_pool2d(&select_channels(&x, &kept)?, 2, 2, 0)?,
                };
            }
            if taps.emit(&mut x)? {
                return Ok(None);
            }
        }
        if taps.computes() {
            if let Some(kept) = taps.narrowing() {
                x = select_channels(&x, &kept)?;
            }
            x = adaptive_avg_pool2d(&x, HEAD_GRID, HEAD_GRID)?;
        }
        if taps.emit(&mut x)? {
            return Ok(None);
        }
        Ok(Some(x.flatten_from(1)?))
    }
}
