//! Results to pictures: the adapters from `fmv-core`'s plain results to `fmv-render`'s figures,
//! and the original package's mask rule, written once for the report, the `fmv overlay`
//! command and the examples.

use fmv_core::{ClassSums, ImageActivations, ImageMaps, Ranking, RgbImage};
use fmv_models::Family;
use fmv_render::{ClassSumsPanel, ClassSumsPlot, MaskScale, MeanActivationPlot, RankChart};
use fmv_render::{RankedClass, RenderError, overlay};

/// The original's mask scale: one ResNet map ×2, one VGG map ÷ its maximum, a sum of several
/// maps as it is.
///
/// ```
/// use fmv_models::Family;
/// use fmv_render::MaskScale;
/// assert_eq!(fmv_report::draw::mask_scale(Family::ResNet, 1), MaskScale::Factor(2.0));
/// assert_eq!(fmv_report::draw::mask_scale(Family::Vgg, 1), MaskScale::DivideByMax);
/// assert_eq!(fmv_report::draw::mask_scale(Family::Vgg, 3), MaskScale::Factor(1.0));
/// ```
pub fn mask_scale(family: Family, n_maps: usize) -> MaskScale {
    match (n_maps > 1, family) {
        (true, _) => MaskScale::Factor(1.0),
        (false, Family::ResNet) => MaskScale::Factor(2.0),
        (false, Family::Vgg) => MaskScale::DivideByMax,
    }
}

/// The maps summed value by value (one map as it is), all `len` values long.
pub fn sum_maps(maps: &[Vec<f32>], len: usize) -> Vec<f32> {
    let mut sum = vec![0f32; len];
    for map in maps {
        for (s, v) in sum.iter_mut().zip(map) {
            *s += v;
        }
    }
    sum
}

/// An image of `fmv-core` as the `image` crate's.
pub fn to_image(img: &RgbImage) -> image::RgbImage {
    image::RgbImage::from_raw(img.width as u32, img.height as u32, img.pixels.clone())
        .expect("an RgbImage holds width × height × 3 bytes")
}

/// The original's overlay of one image's maps (viz 3 and 4): the maps summed, resized
/// bilinearly to the input, scaled by [`mask_scale`], multiplied onto the image and clipped.
pub fn original_overlay(maps: &ImageMaps, family: Family) -> Result<image::RgbImage, RenderError> {
    let map = sum_maps(&maps.maps, maps.width * maps.height);
    let scale = mask_scale(family, maps.maps.len());
    overlay(&to_image(&maps.input), &map, maps.width, maps.height, scale)
}

/// The class-sums figure: per class's maps, every test image's sum coloured by its class, with
/// the ROC AUC.
pub fn class_sums_plot(sums: &ClassSums) -> ClassSumsPlot {
    ClassSumsPlot {
        title: format!(
            "{} · summed activation of each class's maps, per test image",
            sums.layer
        ),
        classes: sums.classes.iter().map(|c| c.name.clone()).collect(),
        panels: sums
            .top_maps
            .iter()
            .enumerate()
            .map(|(k, (name, _))| ClassSumsPanel {
                map_class: name.clone(),
                points: sums
                    .classes
                    .iter()
                    .enumerate()
                    .flat_map(|(ti, c)| c.sums[k].iter().map(move |&v| (ti, v)))
                    .collect(),
                auc: sums.separability[k],
            })
            .collect(),
    }
}

/// The ranking's bar chart: per class, its unique maps and the fraction of its images that had
/// each among their most active maps.
pub fn rank_chart(ranking: &Ranking) -> RankChart {
    RankChart {
        title: format!(
            "{} · unique maps per class (top {} per image, {} per class)",
            ranking.layer, ranking.n_each_img, ranking.n_each_class
        ),
        classes: ranking
            .classes
            .iter()
            .map(|c| RankedClass {
                name: c.name.clone(),
                maps: c
                    .unique
                    .iter()
                    .map(|&m| (m, c.counts[m] as f32 / c.n_images.max(1) as f32))
                    .collect(),
            })
            .collect(),
    }
}

/// The plot of every map's mean activation for one image, its top maps marked.
pub fn mean_activation_plot(img: &ImageActivations, title: String) -> MeanActivationPlot {
    MeanActivationPlot {
        title,
        means: img.mean.clone(),
        top: img.top.clone(),
    }
}
