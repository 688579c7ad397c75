//! The overlay mask's resize is OpenCV's `INTER_LINEAR`, as the original's `cv2.resize`
//! (references made by `testdata/opencv/make_resize.py`).

use std::path::Path;

#[test]
fn mask_resize_matches_opencv_inter_linear() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/opencv/resize.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let f32s = |v: &serde_json::Value| -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    };
    let mut n = 0;
    for case in v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["interp"] == "linear")
    {
        let dim = |k: &str, i: usize| case[k][i].as_u64().unwrap() as usize;
        let (h, w, oh, ow) = (
            dim("in_hw", 0),
            dim("in_hw", 1),
            dim("out_hw", 0),
            dim("out_hw", 1),
        );
        let (src, dst) = (f32s(&case["src_hwc"]), f32s(&case["dst_hwc"]));
        for c in 0..3 {
            let plane: Vec<f32> = (0..h * w).map(|i| src[i * 3 + c]).collect();
            let out = fmv_render::resize_map_bilinear(&plane, w, h, ow, oh).unwrap();
            for i in 0..oh * ow {
                let want = dst[i * 3 + c];
                assert!(
                    (out[i] - want).abs() <= 1e-5,
                    "{h}x{w} -> {oh}x{ow}, channel {c}, pixel {i}: {} vs {want}",
                    out[i]
                );
            }
        }
        n += 1;
    }
    assert_eq!(n, 2);
}
