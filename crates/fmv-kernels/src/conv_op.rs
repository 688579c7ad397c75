//! fmv's CPU convolution as candle ops: [`ConvOp`] (bias and ReLU fused) and its input
//! gradient [`ConvInputGrad`], each running Winograd ([`crate::winograd`]) where the layer
//! takes it and its kernels were given, im2col + GEMM ([`crate::im2col`]) otherwise.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};

use crate::algorithm::Tile;
use crate::buffer::{host_slice, in_float_type, with_host};
use crate::elementwise::{ReluGrad, zip_map};
use crate::float::Float;
use crate::geometry::ConvGeometry;
use crate::im2col::{self, COL_BYTES};
use crate::winograd::{self, Kernels};

/// The batch size and spatial size of a tensor laid out as `l` that feeds (`what` = "input")
/// or comes out of the convolution `g`, or the error saying why it does not fit.
fn dims4(l: &Layout, g: &ConvGeometry, what: &str) -> candle_core::Result<(usize, usize, usize)> {
    let (n, c, h, w) = l.shape().dims4()?;
    let expect = if what == "input" { g.c_in } else { g.c_out };
    if c != expect {
        candle_core::bail!("fmv conv: {what} has {c} channels, the layer expects {expect}");
    }
    Ok((n, h, w))
}

/// The convolution (bias and optional ReLU fused) as a candle op on the CPU. Applied with
/// `apply_op1_no_bwd` for inference; applied with `apply_op1` on a tracked input its backward
/// pass gives the input's gradient only (the ReLU's mask, then [`ConvInputGrad`]), never the
/// weights'.
pub(crate) struct ConvOp {
    pub geometry: ConvGeometry,
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    /// The Winograd tile the kernels below were transformed for.
    pub tile: Tile,
    /// The Winograd-transformed kernels, for a geometry that [`ConvGeometry::takes_winograd`];
    /// with [`Tile::F2`] the backward pass reads them too.
    pub winograd: Option<Tensor>,
    /// With [`Tile::F4`] on a tracked input: the kernels of the input gradient's convolution
    /// ([`winograd::kernels`] with `adjoint`), which the backward pass reads.
    pub adjoint: Option<Tensor>,
    pub relu: bool,
}

impl ConvOp {
    /// The output's shape for an input laid out as `l`, or the error saying why the layer
    /// cannot take it.
    fn out_shape(&self, l: &Layout) -> candle_core::Result<Shape> {
        let g = &self.geometry;
        let (n, h, w) = dims4(l, g, "input")?;
        let Some((ho, wo)) = g.out_hw(h, w) else {
            candle_core::bail!(
                "fmv conv: a {h}×{w} input is smaller than the {}×{} kernel",
                g.kh,
                g.kw
            )
        };
        Ok(Shape::from((n, g.c_out, ho, wo)))
    }

    /// The output for an input [`ConvOp::out_shape`] accepted.
    fn run<T: Float>(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<Vec<T>> {
        let g = &self.geometry;
        let (n, h, w) = dims4(l, g, "input")?;
        let x = host_slice::<T>(s, l)?;
        let tensors = [
            Some(&self.weight),
            self.bias.as_ref(),
            self.winograd.as_ref(),
        ];
        let y = with_host::<T, _>(&tensors, |ws| {
            let weight = ws[0].expect("the weight is always given");
            Ok(match ws[2] {
                Some(u) if g.takes_winograd() => {
                    let dims = (n, g.c_in, h, w);
                    let u = Kernels { u, adjoint: false };
                    let (tile, c_out, p) = (self.tile, g.c_out, g.padding);
                    winograd::conv3x3(x, None, dims, tile, u, c_out, ws[1], p, self.relu)
                }
                _ => im2col::forward(x, (n, h, w), weight, ws[1], g, self.relu, COL_BYTES),
            })
        })?;
        Ok(y)
    }
}

impl ConvOp {
    /// The input gradient of this convolution for an input of `input_hw`.
    pub fn input_grad(&self, input_hw: (usize, usize)) -> ConvInputGrad {
        let winograd = match self.tile {
            Tile::F2 => self.winograd.clone(),
            Tile::F4 => self.adjoint.clone(),
        };
        ConvInputGrad {
            geometry: self.geometry,
            weight: self.weight.clone(),
            tile: self.tile,
            winograd,
            input_hw,
            relu: self.relu,
        }
    }
}

impl CustomOp1 for ConvOp {
    fn name(&self) -> &'static str {
        "fmv-conv2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let shape = self.out_shape(l)?;
        Ok((in_float_type!(s, "conv", T => self.run::<T>(s, l)?), shape))
    }

    fn bwd(&self, x: &Tensor, y: &Tensor, dy: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let (_, _, h, w) = x.dims4()?;
        // The second argument is the forward output, read only for the ReLU's mask.
        let dx = dy
            .contiguous()?
            .apply_op2_no_bwd(&y.contiguous()?, &self.input_grad((h, w)))?;
        Ok(Some(dx))
    }
}

/// The input gradient of a convolution, applied to `dy` (masked by `y > 0` first when the
/// convolution's ReLU was fused), for an input of `input_hw`. A [`CustomOp2`] on `(dy, y)`.
pub(crate) struct ConvInputGrad {
    pub geometry: ConvGeometry,
    pub weight: Tensor,
    /// The Winograd tile the kernels below were transformed for.
    pub tile: Tile,
    /// For a geometry that [`ConvGeometry::takes_winograd`]: with [`Tile::F2`] the layer's own
    /// kernels, read as those of the transposed convolution ([`Kernels::adjoint`]); with
    /// [`Tile::F4`] the transposed convolution's own ([`winograd::kernels`] with `adjoint`).
    pub winograd: Option<Tensor>,
    pub input_hw: (usize, usize),
    pub relu: bool,
}

impl ConvInputGrad {
    fn run<T: Float>(
        &self,
        (s, l): (&CpuStorage, &Layout),
        (ys, yl): (&CpuStorage, &Layout),
    ) -> candle_core::Result<Vec<T>> {
        let g = &self.geometry;
        let (n, ho, wo) = dims4(l, g, "output gradient")?;
        let (h, w) = self.input_hw;
        if g.out_hw(h, w) != Some((ho, wo)) {
            candle_core::bail!("fmv conv: a {ho}×{wo} gradient does not match a {h}×{w} input")
        }
        let dy = host_slice::<T>(s, l)?;
        // The ReLU's output, whose non-positive positions zero the gradient.
        let relu_mask = if self.relu {
            let y = host_slice::<T>(ys, yl)?;
            if y.len() != dy.len() {
                candle_core::bail!("fmv conv: the ReLU mask does not match the gradient");
            }
            Some(y)
        } else {
            None
        };
        let dx = with_host::<T, _>(&[Some(&self.weight), self.winograd.as_ref()], |ws| {
            Ok(match ws[1] {
                Some(u) if g.takes_winograd() => {
                    let dims = (n, g.c_out, ho, wo);
                    // F(2×2, 3×3) reads the layer's own kernels; F(4×4, 3×3) was given the
                    // transposed convolution's. The mask is applied as the rows are read.
                    let u = Kernels {
                        u,
                        adjoint: self.tile == Tile::F2,
                    };
                    let (tile, c_in, p) = (self.tile, g.c_in, 2 - g.padding);
                    winograd::conv3x3(dy, relu_mask, dims, tile, u, c_in, None, p, false)
                }
                _ => {
                    let masked = relu_mask.map(|y| zip_map::<ReluGrad, T>(dy, y));
                    let dy = masked.as_deref().unwrap_or(dy);
                    im2col::input_grad(dy, (n, h, w), ws[0].expect("given"), g, COL_BYTES)
                }
            })
        })?;
        Ok(dx)
    }
}

impl CustomOp2 for ConvInputGrad {
    fn name(&self) -> &'static str {
        "fmv-conv2d-input-grad"
    }

    fn cpu_fwd(
        &self,
        s: &CpuStorage,
        l: &Layout,
        ys: &CpuStorage,
        yl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, _, _, _) = l.shape().dims4()?;
        let (h, w) = self.input_hw;
        let dx = in_float_type!(s, "conv input gradient", T => self.run::<T>((s, l), (ys, yl))?);
        Ok((dx, Shape::from((n, self.geometry.c_in, h, w))))
    }
}

#[cfg(test)]
mod tests {
    //! Against candle's own `conv2d` / `conv_transpose2d`: an independent implementation of
    //! the same operation, in f64 so that only the order of sums differs.

    use super::*;
    use crate::test_data::{max_abs_diff, random};

    /// (c_in, c_out, k, stride, padding, groups, h, w)
    type Case = (usize, usize, usize, usize, usize, usize, usize, usize);
    /// The last two have maps of at least 1024 pixels (one GEMM per image, not stacked).
    const CASES: [Case; 12] = [
        (3, 8, 7, 2, 3, 1, 19, 23),
        (8, 6, 3, 1, 1, 1, 9, 7),
        (8, 8, 3, 2, 1, 2, 10, 11),
        (6, 12, 1, 1, 0, 1, 5, 8),
        (6, 12, 1, 2, 0, 1, 7, 6),
        (4, 4, 3, 1, 1, 4, 6, 6),
        (5, 7, 2, 2, 0, 1, 8, 9),
        (5, 7, 3, 1, 0, 1, 8, 9),
        (7, 5, 3, 1, 2, 1, 5, 4),
        (16, 9, 3, 1, 1, 1, 1, 2),
        (2, 3, 3, 1, 1, 1, 40, 30),
        (4, 5, 1, 1, 0, 1, 33, 33),
    ];

    /// Runs every case through fmv's convolution and its input gradient, with and without the
    /// Winograd kernels where the geometry takes them, against candle's `conv2d` and
    /// `conv_transpose2d`.
    #[test]
    fn forward_and_input_grad_match_candle() {
        let mut winograd_cases = 0;
        for (i, &(c_in, c_out, k, stride, padding, groups, h, w)) in CASES.iter().enumerate() {
            let g = ConvGeometry {
                c_in,
                c_out,
                kh: k,
                kw: k,
                stride,
                padding,
                groups,
            };
            let x = random(&[2, c_in, h, w], i as u64);
            let weight = random(&[c_out, c_in / groups, k, k], 100 + i as u64);
            let bias = random(&[c_out], 200 + i as u64);
            let theirs = x
                .conv2d(&weight, padding, stride, 1, groups)
                .unwrap()
                .broadcast_add(&bias.reshape((1, c_out, 1, 1)).unwrap())
                .unwrap();
            let dy = random(theirs.dims(), 300 + i as u64);
            // dx through candle's conv_transpose2d, group by group: candle's own arithmetic.
            let expected_dx = crate::input_grad::conv_input_grad_transposed(
                &x, &dy, &weight, stride, padding, groups,
            )
            .unwrap();

            let mut variants = vec![(Tile::F2, None)];
            if g.takes_winograd() {
                winograd_cases += 1;
                for tile in [Tile::F2, Tile::F4] {
                    variants.push((tile, Some(winograd::kernels(&weight, tile, false).unwrap())));
                }
            }
            for (tile, wk) in &variants {
                let path = format!("{tile:?} {}", wk.is_some());
                for relu in [false, true] {
                    let ours = x
                        .apply_op1_no_bwd(&ConvOp {
                            geometry: g,
                            weight: weight.clone(),
                            bias: Some(bias.clone()),
                            tile: *tile,
                            winograd: wk.clone(),
                            adjoint: None,
                            relu,
                        })
                        .unwrap();
                    let reference = if relu {
                        theirs.relu().unwrap()
                    } else {
                        theirs.clone()
                    };
                    let d = max_abs_diff(&ours, &reference);
                    assert!(
                        d < 1e-12,
                        "case {i} path {path} relu {relu}: forward differs by {d}"
                    );
                }
                // F(4×4, 3×3) reads the transposed convolution's own kernels.
                let grad_kernels = match (tile, wk) {
                    (Tile::F4, Some(_)) => Some(winograd::kernels(&weight, *tile, true).unwrap()),
                    _ => wk.clone(),
                };
                let op = ConvInputGrad {
                    geometry: g,
                    weight: weight.clone(),
                    tile: *tile,
                    winograd: grad_kernels,
                    input_hw: (h, w),
                    relu: false,
                };
                let dx = dy.apply_op2_no_bwd(&dy, &op).unwrap();
                let d = max_abs_diff(&dx, &expected_dx);
                assert!(
                    d < 1e-12,
                    "case {i} path {path}: input gradient differs by {d}"
                );
                // Through the ReLU: the gradient masked where the layer's output is not
                // positive (about half of it), then the same transposed convolution.
                let y = theirs.relu().unwrap();
                let masked_dy = (&dy * y.gt(0.0).unwrap().to_dtype(dy.dtype()).unwrap()).unwrap();
                let expected_dx = crate::input_grad::conv_input_grad_transposed(
                    &x, &masked_dy, &weight, stride, padding, groups,
                )
                .unwrap();
                let op = ConvInputGrad { relu: true, ..op };
                let dx = dy.apply_op2_no_bwd(&y, &op).unwrap();
                let d = max_abs_diff(&dx, &expected_dx);
                assert!(
                    d < 1e-12,
                    "case {i} path {path}: input gradient through the ReLU differs by {d}"
                );
            }
        }
        assert_eq!(winograd_cases, 5);
    }

    #[test]
    fn bad_shapes_are_errors() {
        let g = ConvGeometry {
            c_in: 3,
            c_out: 4,
            kh: 3,
            kw: 3,
            stride: 1,
            padding: 0,
            groups: 1,
        };
        let weight = random(&[4, 3, 3, 3], 1);
        let op = ConvOp {
            geometry: g,
            weight,
            bias: None,
            tile: Tile::F2,
            winograd: None,
            adjoint: None,
            relu: false,
        };
        let err = random(&[1, 2, 5, 5], 2).apply_op1_no_bwd(&op).unwrap_err();
        assert!(err.to_string().contains("2 channels"), "{err}");
        let err = random(&[1, 3, 2, 5], 2).apply_op1_no_bwd(&op).unwrap_err();
        assert!(err.to_string().contains("smaller than"), "{err}");
    }
}
