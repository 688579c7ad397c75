//! A guard against inputs too large for the machine: before a run starts, a lower bound on the
//! memory its maps take is checked against the memory the system says is available, so that an
//! input side mistyped by a digit fails at once with an error naming the argument, instead of
//! aborting in an allocation (or being killed) after minutes of work.
//!
//! The bound counts only the input and the maps the network's taps return (each residual block's
//! output, each convolution's and pool's output in VGG), never a layer's inner maps, scratch or
//! weights: a run the check refuses cannot fit, and a run it lets through may still need more.
//! (ResNet-50 at 986 px: a bound of 489 MiB, where two compat steps peak at 1401 MiB.)

use fmv_models::{LayerId, LayerKind};

use crate::error::{Error, Field, Result};
use crate::visualizer::Visualizer;

/// What the maps of one pass need to be kept at the same time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keeps {
    /// A gradient step keeps the maps of every tap up to the layer for its backward pass.
    EveryMap,
    /// Inference needs at least the largest map on the way to the layer.
    LargestMap,
}

impl Visualizer {
    /// Fails when `batch` inputs of `h`×`w` pixels certainly do not fit in the memory available
    /// (on the CPU, where the system reports it; other devices are not checked). `what` names
    /// the pass ("a compat step at 986x986 px"), `fix` the settings that set its size and
    /// what else helps.
    pub(crate) fn check_memory(
        &self,
        layer: LayerId,
        (h, w): (usize, usize),
        batch: usize,
        keeps: Keeps,
        what: &str,
        fix: (&'static [Field], &'static str),
    ) -> Result<()> {
        if !self.backbone().device().is_cpu() {
            return Ok(());
        }
        let need = self.maps_bytes(layer, (h, w), batch, keeps);
        fits(
            need,
            available_bytes(),
            what,
            fix,
            &self.backbone().layer(layer).name,
        )
    }

    /// The lower bound: the input and the taps' maps up to `layer` (all of them, or the
    /// largest), for `batch` inputs, in the network's float type.
    fn maps_bytes(
        &self,
        layer: LayerId,
        (h, w): (usize, usize),
        batch: usize,
        keeps: Keeps,
    ) -> u128 {
        let net = self.backbone();
        let sizes = net.spatial_sizes(h, w);
        let maps = net.layers()[..=layer.0]
            .iter()
            .zip(&sizes)
            // A stage's tap is its last block's map again.
            .filter(|(info, _)| info.kind != LayerKind::Stage)
            .map(|(info, size)| {
                size.map_or(0, |(mh, mw)| {
                    info.channels as u128 * mh as u128 * mw as u128
                })
            });
        let floats = match keeps {
            Keeps::EveryMap => maps.sum::<u128>(),
            Keeps::LargestMap => maps.max().unwrap_or(0),
        } + 3 * h as u128 * w as u128;
        floats * batch as u128 * net.dtype().size_in_bytes() as u128
    }
}

/// Fails when `need` bytes exceed `available` (when known).
fn fits(
    need: u128,
    available: Option<u64>,
    what: &str,
    (lower, note): (&'static [Field], &'static str),
    layer: &str,
) -> Result<()> {
    match available {
        Some(available) if need > available as u128 => Err(Error::OutOfMemory {
            what: what.to_string(),
            layer: layer.to_string(),
            need,
            available,
            lower,
            note,
        }),
        _ => Ok(()),
    }
}

/// `n` bytes for a person: MiB, GiB or TiB with one decimal.
pub(crate) fn bytes(n: u128) -> String {
    let n = n as f64;
    let (value, unit) = [(40, "TiB"), (30, "GiB"), (20, "MiB")]
        .into_iter()
        .map(|(shift, unit)| (n / (1u64 << shift) as f64, unit))
        .find(|&(v, _)| v >= 1.0)
        .unwrap_or((n / (1u64 << 20) as f64, "MiB"));
    format!("{value:.1} {unit}")
}

/// The memory the system can give without swapping out other programs' pages, plus free swap
/// (Linux's `MemAvailable` and `SwapFree`); `None` where it does not say.
fn available_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_meminfo(&info)
}

/// `MemAvailable + SwapFree` from the text of `/proc/meminfo`, in bytes.
fn parse_meminfo(info: &str) -> Option<u64> {
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
    };
    Some((field("MemAvailable")? + field("SwapFree").unwrap_or(0)) * 1024)
}

#[cfg(test)]
mod tests {
    use fmv_models::{LoadOptions, Model};

    use super::*;

    /// The bound against the maps a forward pass really returns, on both reference networks at
    /// a size that is neither square nor a multiple of their strides.
    #[test]
    fn the_bound_counts_the_maps_the_forward_pass_returns() {
        let (h, w) = (70, 90);
        for name in ["resnet50_small_seed1", "vgg16_small_seed1"] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(
                "../../testdata/reference/weights/{name}.safetensors"
            ));
            let viz = Visualizer::new(Model::load(path, &LoadOptions::new()).unwrap());
            let net = viz.backbone();
            let layers = net.layers();
            let last = layers
                .iter()
                .rposition(|l| l.kind != LayerKind::Logits && l.kind != LayerKind::AvgPool)
                .unwrap();
            let taps: Vec<LayerId> = (0..=last)
                .filter(|&i| layers[i].kind != LayerKind::Stage)
                .map(LayerId)
                .collect();
            let x = candle_core::Tensor::zeros((2, 3, h, w), net.dtype(), net.device()).unwrap();
            let maps: Vec<u128> = net
                .forward_taps(&x, &taps)
                .unwrap()
                .iter()
                .map(|t| (t.elem_count() / 2) as u128)
                .collect();
            let (input, f32) = ((3 * h * w) as u128, 4u128);
            let every = viz.maps_bytes(LayerId(last), (h, w), 2, Keeps::EveryMap);
            assert_eq!(
                every,
                (maps.iter().sum::<u128>() + input) * 2 * f32,
                "{name}"
            );
            let largest = viz.maps_bytes(LayerId(last), (h, w), 2, Keeps::LargestMap);
            assert_eq!(
                largest,
                (maps.iter().max().unwrap() + input) * 2 * f32,
                "{name}"
            );
        }
    }

    #[test]
    fn meminfo_gives_available_memory_plus_free_swap() {
        let info = "MemTotal:       24576000 kB\nMemFree:         1000 kB\nMemAvailable:   20000000 kB\nSwapTotal:     2000 kB\nSwapFree:          1000 kB\n";
        assert_eq!(parse_meminfo(info), Some(20_001_000 * 1024));
        assert_eq!(parse_meminfo("MemTotal: 5 kB\n"), None);
    }

    #[test]
    fn a_need_beyond_the_available_memory_names_both_and_the_fix() {
        let gib = 1u128 << 30;
        let fix = (&[Field::Size, Field::BatchSize][..], " (or buy memory)");
        assert!(fits(gib, Some(2 << 30), "a step", fix, "layer4.1").is_ok());
        assert!(fits(gib, None, "a step", fix, "layer4.1").is_ok());
        let e = fits(3 * gib, Some(2 << 30), "a step", fix, "layer4.1").unwrap_err();
        assert_eq!(
            e.to_string(),
            "a step needs at least 3.0 GiB of memory for its maps (up to `layer4.1`) and input, and 2.0 GiB is available; lower `size` or `batch_size` (or buy memory)"
        );
    }

    #[test]
    fn sizes_read_in_the_largest_unit_that_is_at_least_one() {
        assert_eq!(bytes(1536 << 20), "1.5 GiB");
        assert_eq!(bytes(3 << 40), "3.0 TiB");
        assert_eq!(bytes(512 << 10), "0.5 MiB");
    }
}
