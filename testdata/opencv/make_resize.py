"""OpenCV resize references for fmv's bicubic (patterns) and bilinear (overlay masks) resizes.

    python testdata/opencv/make_resize.py     # opencv-python-headless 4.x/5.x, numpy
"""
import json, os
import cv2
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(3)
cases = []
for (h, w, oh, ow, interp) in [(20, 20, 24, 24, "cubic"), (24, 24, 28, 28, "cubic"), (9, 13, 17, 11, "cubic"),
                               (7, 7, 30, 30, "linear"), (14, 14, 45, 45, "linear")]:
    src = rng.uniform(-2.0, 3.0, size=(h, w, 3)).astype(np.float32)
    flag = cv2.INTER_CUBIC if interp == "cubic" else cv2.INTER_LINEAR
    dst = cv2.resize(src, (ow, oh), interpolation=flag)
    cases.append({"interp": interp, "in_hw": [h, w], "out_hw": [oh, ow],
                  "src_hwc": [float(v) for v in src.ravel()], "dst_hwc": [float(v) for v in dst.ravel()]})
with open(os.path.join(HERE, "resize.json"), "w") as f:
    json.dump({"opencv": cv2.__version__, "cases": cases}, f)
