//! fmv's examples, one per capability; run one with `cargo run --release -p fmv-examples
//! --example rank`. Each works offline on the embedded demo network and generated images, and
//! uses only the `fmv` facade. This library is empty: the examples are the point.
