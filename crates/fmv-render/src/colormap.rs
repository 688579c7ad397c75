//! Colour maps: a perceptually uniform one for heat maps and a qualitative palette for classes.

/// Viridis (matplotlib's default colour map), `t` in `[0, 1]` (clamped; NaN counts as 0).
///
/// A degree-6 polynomial fit of matplotlib's table (after Matt Zucker's fit, max error about
/// 1/255 per channel), so no table has to be carried.
///
/// ```
/// let dark = fmv_render::viridis(0.0);
/// let bright = fmv_render::viridis(1.0);
/// assert!(dark[2] > dark[1] && bright[0] > 200 && bright[1] > 200);
/// ```
pub fn viridis(t: f32) -> [u8; 3] {
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) } as f64;
    const C: [[f64; 3]; 7] = [
        [
            0.277_727_327_223_417_63,
            0.005_407_344_544_966_578,
            0.334_099_805_335_306_9,
        ],
        [
            0.105_093_043_108_577_4,
            1.404_613_529_898_575,
            1.384_590_162_594_685,
        ],
        [
            -0.330_861_828_725_556_3,
            0.214_847_559_468_213,
            0.095_095_163_187_569_8,
        ],
        [
            -4.634_230_498_983_486,
            -5.799_100_973_351_585,
            -19.332_440_956_502_71,
        ],
        [
            6.228_269_936_347_081,
            14.179_933_439_140_99,
            56.690_552_738_765_33,
        ],
        [
            4.776_384_997_670_288,
            -13.745_145_601_612_97,
            -65.353_032_154_654_86,
        ],
        [
            -5.435_455_855_934_631,
            4.645_852_612_178_535,
            26.312_435_084_224_8,
        ],
    ];
    std::array::from_fn(|c| {
        let v = C.iter().rev().fold(0.0, |acc, k| acc * t + k[c]);
        (v.clamp(0.0, 1.0) * 255.0).round() as u8
    })
}

/// Tableau's ten qualitative colours; class `i` takes colour `i mod 10`.
pub const CLASS_COLOURS: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

/// The colour of class `i`.
pub fn class_colour(i: usize) -> [u8; 3] {
    CLASS_COLOURS[i % CLASS_COLOURS.len()]
}
