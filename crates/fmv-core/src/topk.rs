//! The one ranking rule fmv uses everywhere: value descending, ties broken by the lower index.

/// The indices of the `n` largest values, largest first; equal values keep the lower index
/// first, so the result never depends on the machine (numpy's `argsort` is not stable).
/// NaN ranks below every number.
///
/// ```
/// assert_eq!(fmv_core::stats::top_n(&[0.5, 2.0, 0.5, 1.0], 3), vec![1, 3, 0]);
/// ```
pub fn top_n<T: PartialOrd + Copy>(values: &[T], n: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| {
        let (va, vb) = (values[a], values[b]);
        let ord = match (va.partial_cmp(&va).is_some(), vb.partial_cmp(&vb).is_some()) {
            (true, true) => vb.partial_cmp(&va).unwrap_or(std::cmp::Ordering::Equal),
            (true, false) => std::cmp::Ordering::Less,
            (false, true) => std::cmp::Ordering::Greater,
            (false, false) => std::cmp::Ordering::Equal,
        };
        ord.then(a.cmp(&b))
    });
    idx.truncate(n);
    idx
}
