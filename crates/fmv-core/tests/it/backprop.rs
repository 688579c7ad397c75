//! candle's backward pass as fmv builds it (`vendor/candle-core`, see `vendor/README.md`): the
//! first gradient to reach a node is stored as it is, not added into a tensor of zeros. These
//! tests check that what the change touches still gives the analytic gradient: fan-in (a
//! tensor used several times), the rules that subtract, broadcasts and views, whose stored
//! gradients must be contiguous tensors of the node's own shape.

use candle_core::{D, DType, Device, Tensor, Var};

fn values(t: &Tensor) -> Vec<f64> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn assert_close(got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-12 * w.abs().max(1.0),
            "element {i}: {g} against {w}"
        );
    }
}

const XS: [f64; 4] = [-1.5, -0.25, 0.5, 2.0];

fn var() -> Var {
    Var::new(&XS, &Device::Cpu).unwrap()
}

/// `x` reaches the sum three times (both sides of a product and an addition): the three
/// gradients are summed, `2x + 1`.
#[test]
fn a_tensor_used_several_times_gets_the_sum_of_its_gradients() {
    let x = var();
    let y = ((x.as_tensor() * x.as_tensor()).unwrap() + x.as_tensor()).unwrap();
    let grads = y.sum_all().unwrap().backward().unwrap();
    let want: Vec<f64> = XS.iter().map(|x| 2.0 * x + 1.0).collect();
    assert_close(&values(grads.get(x.as_tensor()).unwrap()), &want);
}

/// Negation, the right-hand side of a subtraction and of a division subtract their gradient:
/// alone (the first gradient, stored negated) and together with others (fan-in).
#[test]
fn the_rules_that_subtract_give_the_analytic_gradient() {
    let x = var();
    let t = x.as_tensor();
    // Only the right-hand side of a subtraction reaches x: d/dx (3 − x) = −1.
    let y = (Tensor::full(3.0f64, 4, &Device::Cpu).unwrap() - t).unwrap();
    let grads = y.sum_all().unwrap().backward().unwrap();
    assert_close(&values(grads.get(t).unwrap()), &[-1.0; 4]);
    // Only the right-hand side of a division reaches x: d/dx (2 / x) = −2/x².
    let two = Tensor::full(2.0f64, 4, &Device::Cpu).unwrap();
    let grads = (&two / t).unwrap().sum_all().unwrap().backward().unwrap();
    let want: Vec<f64> = XS.iter().map(|x| -2.0 / (x * x)).collect();
    assert_close(&values(grads.get(t).unwrap()), &want);
    // −x + eˣ − x² + 1/x + 2/x: −1 + eˣ − 2x − 3/x², five gradients summed.
    let y = (((t.neg().unwrap() + t.exp().unwrap()).unwrap() - t.sqr().unwrap()).unwrap()
        + t.recip().unwrap())
    .unwrap();
    let y = (y + (&two / t).unwrap()).unwrap();
    let grads = y.sum_all().unwrap().backward().unwrap();
    let want: Vec<f64> = XS
        .iter()
        .map(|x| -1.0 + x.exp() - 2.0 * x - 3.0 / (x * x))
        .collect();
    assert_close(&values(grads.get(t).unwrap()), &want);
}

/// A gradient that arrives as a broadcast or a transposed view is stored as a contiguous tensor
/// of the node's shape, with the summed (or transposed) values.
#[test]
fn gradients_of_broadcasts_and_views_are_contiguous_and_shaped_like_their_node() {
    let x = Var::new(&[[1.0f64, 2.0, 3.0], [4.0, 5.0, 6.0]], &Device::Cpu).unwrap();
    let t = x.as_tensor();
    let w = Tensor::new(&[[1.0f64, -2.0], [0.5, 3.0], [-1.0, 4.0]], &Device::Cpu).unwrap();
    // y = Σ xᵀ ⊙ w: dy/dx = wᵀ, reached through a transpose.
    let grads = (t.t().unwrap() * &w)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let g = grads.get(t).unwrap();
    assert_eq!(g.dims(), [2, 3]);
    assert!(g.is_contiguous());
    assert_close(&values(g), &[1.0, 0.5, -1.0, -2.0, 3.0, 4.0]);
    // A row broadcast to three rows, then summed over the last axis: every element of the row
    // receives three times its column's weight in `v`.
    let row = Var::new(&[[1.0f64, 2.0]], &Device::Cpu).unwrap();
    let v = Tensor::new(&[[1.0f64, 10.0], [2.0, 20.0], [3.0, 30.0]], &Device::Cpu).unwrap();
    let y = (row.as_tensor().broadcast_as((3, 2)).unwrap() * &v)
        .unwrap()
        .sum(D::Minus1)
        .unwrap()
        .sum_all()
        .unwrap();
    let grads = y.backward().unwrap();
    let g = grads.get(row.as_tensor()).unwrap();
    assert_eq!(g.dims(), [1, 2]);
    assert!(g.is_contiguous());
    assert_close(&values(g), &[6.0, 60.0]);
}
