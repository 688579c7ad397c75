//! `cargo xtask <task>`: project automation that is not part of the product.
//!
//! - `bench`: forward-pass speed of full-size ResNet50 and VGG16 (seeded random weights) next
//!   to a large-matmul ceiling measured in the same run. Not a test; CI does not run it.

mod bench;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("bench") => bench::run(&args[1..]),
        _ => {
            eprintln!("usage: cargo xtask bench [--runs N]");
            std::process::exit(2);
        }
    }
}
