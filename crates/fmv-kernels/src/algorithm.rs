//! Which algorithm a convolution and its input gradient run: a choice made when a model loads,
//! recorded with every result that depends on it (the algorithms round differently).

use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Device, DeviceLocation};

/// The output tile of a Winograd transform, F(m×m, 3×3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Tile {
    /// F(2×2, 3×3): 4×4 input tiles, 2.25× fewer multiplications than the direct algorithm,
    /// transforms of 0, ±1 and ±½ only, so it rounds like the direct algorithm. The default
    /// for a tracked input.
    #[default]
    F2,
    /// F(4×4, 3×3): 6×6 input tiles, 4× fewer multiplications; coefficients up to 8 and 1/24
    /// make its f32 rounding larger.
    F4,
}

/// How the convolutions of a model run on the CPU.
///
/// Every choice computes the same convolution; they differ in speed and in rounding (which
/// activation maximisation amplifies), so a result records the one that made it. On other
/// devices, and in other float types than `f32`/`f64`, convolutions always run on candle's own
/// ops ([`ConvAlgorithm::Candle`]).
///
/// ```
/// use fmv_kernels::{ConvAlgorithm, Tile};
/// assert_eq!("winograd4".parse::<ConvAlgorithm>().unwrap(), ConvAlgorithm::WinogradOnly(Tile::F4));
/// assert_eq!(ConvAlgorithm::default().to_string(), "winograd");
/// assert!("fft".parse::<ConvAlgorithm>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ConvAlgorithm {
    /// fmv's CPU convolution, with Winograd for the 3×3 stride-1 ungrouped layers of at least
    /// 16 input channels (an image's first layer, with three, takes im2col + GEMM): F(4×4, 3×3)
    /// on maps of at least 24 pixels a side, F(2×2, 3×3) otherwise. A tracked input (a
    /// gradient step) takes F(2×2, 3×3), which rounds like the direct algorithm, where its
    /// caller asks for it (the compat patterns, so that they follow the original's
    /// trajectory), and F(4×4, 3×3) forward and backward otherwise. The default.
    #[default]
    Winograd,
    /// As [`ConvAlgorithm::Winograd`], with one tile for every 3×3 stride-1 ungrouped layer,
    /// whatever its channels (a tracked input whose caller asks for F(2×2, 3×3) still takes
    /// it).
    WinogradOnly(Tile),
    /// fmv's CPU convolution, im2col + GEMM for every layer.
    Gemm,
    /// candle's `conv2d` (and, for input gradients, its transposed convolution). On a CUDA
    /// device that is im2col and a cuBLAS GEMM, or cuDNN (kept in f32) in a build with the
    /// `cudnn` feature.
    Candle,
}

/// The kernels candle's `conv2d` runs on a GPU, as a result records them beside its
/// [`ConvAlgorithm`] (the two round differently): `cudnn` on CUDA in a build with the `cudnn`
/// feature (fmv's; enabling candle's own `cudnn` feature alone is not seen here),
/// `im2col+cublas` on CUDA without it, `metal` on Metal; `None` on the CPU, where the
/// [`ConvAlgorithm`] names the kernels. Strided layers' input gradients take candle's
/// transposed convolution on a GPU whatever this says.
///
/// ```
/// use candle_core::DeviceLocation;
/// use fmv_kernels::gpu_convolution;
/// assert_eq!(gpu_convolution(DeviceLocation::Cpu), None);
/// assert_eq!(gpu_convolution(DeviceLocation::Metal { gpu_id: 0 }), Some("metal"));
/// let cuda = gpu_convolution(DeviceLocation::Cuda { gpu_id: 0 });
/// assert_eq!(cuda, Some(if cfg!(feature = "cudnn") { "cudnn" } else { "im2col+cublas" }));
/// ```
pub fn gpu_convolution(location: DeviceLocation) -> Option<&'static str> {
    match location {
        DeviceLocation::Cpu => None,
        DeviceLocation::Cuda { .. } if cfg!(feature = "cudnn") => Some("cudnn"),
        DeviceLocation::Cuda { .. } => Some("im2col+cublas"),
        DeviceLocation::Metal { .. } => Some("metal"),
    }
}

/// The smallest output side on which inference takes F(4×4, 3×3): below it, padding the map to
/// whole 4×4 tiles wastes more than the larger tile saves (ResNet's 14×14 and 7×7 stages).
const F4_FROM: usize = 24;

/// The fewest input channels on which [`ConvAlgorithm::Winograd`] takes a Winograd tile. With
/// fewer (an image's three), each transform-domain product sums so few channels that the
/// transforms cost more than they save: on VGG16's first layer at 224 px, im2col + GEMM
/// takes about half the time of F(4×4, 3×3) and of F(2×2, 3×3), forward and backward (measured
/// in docs/PERFORMANCE.md).
const WINOGRAD_FROM_C_IN: usize = 16;

impl ConvAlgorithm {
    /// Every algorithm's name, as [`FromStr`] reads it.
    pub const NAMES: [&'static str; 5] = ["winograd", "winograd2", "winograd4", "gemm", "candle"];

    /// The algorithm that runs for weights on `device` in `dtype`: this one on the CPU in
    /// `f32`/`f64`, [`ConvAlgorithm::Candle`] elsewhere.
    pub fn effective(self, device: &Device, dtype: DType) -> Self {
        if device.is_cpu() && matches!(dtype, DType::F32 | DType::F64) {
            self
        } else {
            ConvAlgorithm::Candle
        }
    }

    /// The Winograd tile for a layer of `c_in` input channels whose output's smaller side is
    /// `side`, `None` when the algorithm takes no Winograd there (the layer's geometry decides
    /// separately whether it can take one). `tracked` is, for a tracked input, the largest tile
    /// its caller allows ([`Tile::F2`] to round like the direct algorithm), `None` for
    /// inference.
    pub(crate) fn tile(self, tracked: Option<Tile>, side: usize, c_in: usize) -> Option<Tile> {
        let largest = match self {
            ConvAlgorithm::Winograd if c_in < WINOGRAD_FROM_C_IN => return None,
            ConvAlgorithm::Winograd if side >= F4_FROM => Tile::F4,
            ConvAlgorithm::Winograd => Tile::F2,
            ConvAlgorithm::WinogradOnly(tile) => tile,
            ConvAlgorithm::Gemm | ConvAlgorithm::Candle => return None,
        };
        Some(match tracked {
            Some(Tile::F2) => Tile::F2,
            _ => largest,
        })
    }
}

impl fmt::Display for ConvAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConvAlgorithm::Winograd => "winograd",
            ConvAlgorithm::WinogradOnly(Tile::F2) => "winograd2",
            ConvAlgorithm::WinogradOnly(Tile::F4) => "winograd4",
            ConvAlgorithm::Gemm => "gemm",
            ConvAlgorithm::Candle => "candle",
        })
    }
}

impl FromStr for ConvAlgorithm {
    type Err = UnknownAlgorithm;

    /// `winograd`, `winograd2`, `winograd4`, `gemm` or `candle`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "winograd" => ConvAlgorithm::Winograd,
            "winograd2" => ConvAlgorithm::WinogradOnly(Tile::F2),
            "winograd4" => ConvAlgorithm::WinogradOnly(Tile::F4),
            "gemm" => ConvAlgorithm::Gemm,
            "candle" => ConvAlgorithm::Candle,
            _ => {
                return Err(UnknownAlgorithm {
                    name: s.to_string(),
                    valid: &ConvAlgorithm::NAMES,
                });
            }
        })
    }
}

/// How a convolution computes its input's gradient where fmv's CPU convolution does not run
/// (other devices, or [`ConvAlgorithm::Candle`]); fmv's CPU convolution has its own.
///
/// ```
/// use fmv_kernels::InputGradAlgorithm;
/// assert_eq!("transposed".parse::<InputGradAlgorithm>().unwrap(), InputGradAlgorithm::Transposed);
/// assert_eq!(InputGradAlgorithm::default().to_string(), "flipped");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum InputGradAlgorithm {
    /// A stride-1 layer with a square kernel runs its gradient as a convolution of the
    /// gradient with the flipped, transposed kernel (on CUDA: im2col + cuBLAS, or cuDNN with
    /// the `cudnn` feature); strided layers
    /// take candle's transposed convolution. The default.
    #[default]
    Flipped,
    /// Every layer takes candle's transposed convolution (on CUDA a direct kernel).
    Transposed,
}

impl InputGradAlgorithm {
    /// Every algorithm's name, as [`FromStr`] reads it.
    pub const NAMES: [&'static str; 2] = ["flipped", "transposed"];
}

impl fmt::Display for InputGradAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InputGradAlgorithm::Flipped => "flipped",
            InputGradAlgorithm::Transposed => "transposed",
        })
    }
}

impl FromStr for InputGradAlgorithm {
    type Err = UnknownAlgorithm;

    /// `flipped` or `transposed`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "flipped" => Ok(InputGradAlgorithm::Flipped),
            "transposed" => Ok(InputGradAlgorithm::Transposed),
            _ => Err(UnknownAlgorithm {
                name: s.to_string(),
                valid: &InputGradAlgorithm::NAMES,
            }),
        }
    }
}

/// The algorithms a model's layers run, chosen when it loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Algorithms {
    /// How convolutions run on the CPU.
    pub conv: ConvAlgorithm,
    /// How input gradients run where fmv's CPU convolution does not.
    pub input_grad: InputGradAlgorithm,
}

impl Algorithms {
    /// The algorithms of these names, the default for a name not given: how a binary reads
    /// its settings (`fmv` reads `FMV_CONV` and `FMV_INPUT_GRAD`).
    ///
    /// ```
    /// use fmv_kernels::{Algorithms, ConvAlgorithm};
    /// let a = Algorithms::from_names(Some("gemm"), None).unwrap();
    /// assert_eq!(a.conv, ConvAlgorithm::Gemm);
    /// assert!(Algorithms::from_names(None, Some("direct")).is_err());
    /// ```
    pub fn from_names(
        conv: Option<&str>,
        input_grad: Option<&str>,
    ) -> Result<Self, UnknownAlgorithm> {
        Ok(Algorithms {
            conv: conv.map(str::parse).transpose()?.unwrap_or_default(),
            input_grad: input_grad.map(str::parse).transpose()?.unwrap_or_default(),
        })
    }
}

/// A name that is no algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownAlgorithm {
    /// The name given.
    pub name: String,
    /// The valid names.
    pub valid: &'static [&'static str],
}

impl fmt::Display for UnknownAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown algorithm `{}`; valid: {}",
            self.name,
            self.valid.join(", ")
        )
    }
}

impl std::error::Error for UnknownAlgorithm {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every name reads back as the algorithm that prints it.
    #[test]
    fn names_round_trip() {
        for name in ConvAlgorithm::NAMES {
            assert_eq!(name.parse::<ConvAlgorithm>().unwrap().to_string(), name);
        }
        for name in InputGradAlgorithm::NAMES {
            assert_eq!(
                name.parse::<InputGradAlgorithm>().unwrap().to_string(),
                name
            );
        }
        let err = "winograd3".parse::<ConvAlgorithm>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown algorithm `winograd3`; valid: winograd, winograd2, winograd4, gemm, candle"
        );
    }

    /// A gradient step whose caller asks for F(2×2, 3×3) takes it whatever the algorithm;
    /// otherwise F(4×4, 3×3) runs on large maps only (or everywhere with `winograd4`). The
    /// default leaves layers of few input channels to the GEMM; `winograd2`/`winograd4` do not.
    #[test]
    fn tiles_follow_the_algorithm_the_caller_the_map_size_and_the_channels() {
        let c = WINOGRAD_FROM_C_IN;
        let w = ConvAlgorithm::Winograd;
        assert_eq!(w.tile(Some(Tile::F2), 100, c), Some(Tile::F2));
        assert_eq!(w.tile(Some(Tile::F4), 100, c), Some(Tile::F4));
        assert_eq!(w.tile(Some(Tile::F4), F4_FROM - 1, c), Some(Tile::F2));
        assert_eq!(w.tile(None, F4_FROM, c), Some(Tile::F4));
        assert_eq!(w.tile(None, F4_FROM - 1, c), Some(Tile::F2));
        for tracked in [None, Some(Tile::F2), Some(Tile::F4)] {
            assert_eq!(w.tile(tracked, 100, c - 1), None);
            assert_eq!(w.tile(tracked, 100, 3), None);
        }
        let f4 = ConvAlgorithm::WinogradOnly(Tile::F4);
        assert_eq!(f4.tile(None, 7, c), Some(Tile::F4));
        assert_eq!(f4.tile(Some(Tile::F2), 7, c), Some(Tile::F2));
        assert_eq!(f4.tile(Some(Tile::F4), 7, 3), Some(Tile::F4));
        let f2 = ConvAlgorithm::WinogradOnly(Tile::F2);
        assert_eq!(f2.tile(Some(Tile::F4), 100, c), Some(Tile::F2));
        assert_eq!(f2.tile(None, 100, 3), Some(Tile::F2));
        assert_eq!(ConvAlgorithm::Gemm.tile(None, 100, c), None);
        assert_eq!(ConvAlgorithm::Candle.tile(Some(Tile::F4), 100, c), None);
    }
}
