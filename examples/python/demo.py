"""The demo end to end from Python, with nothing but fmv's wheel and numpy installed:

    python examples/python/demo.py [OUT_DIR]

It writes the demo's report (and its generated images) into OUT_DIR (default `demo-out`), then
ranks the maps of `layer4` per class and draws the patterns of the stripes' top two maps into
OUT_DIR/patterns.npz. CI runs it in a venv with only the wheel and numpy.
"""

import sys
from pathlib import Path

import numpy as np

import fmv

out = Path(sys.argv[1] if len(sys.argv) > 1 else "demo-out")
viz = fmv.Visualizer(fmv.Model.demo(), preprocess="original", size=(96, 96))
print("report:", viz.report(out, pattern_steps=8))

ranking = viz.rank(out / "data" / "train", "layer4", n_each_img=8, n_each_class=8)
for cls, maps in ranking["classes"].items():
    print(f"{cls}: unique maps {maps}")

maps = ranking["classes"]["stripes"][:2]
patterns = viz.patterns("layer4", maps, steps=32)
for p in patterns:
    print(f"filter {p.filter}: activation {p.activation_trace[0]:.3f} -> {p.final_activation:.3f}")
np.savez(out / "patterns.npz", **{f"filter_{p.filter}": p.image for p in patterns})
assert all(p.image.dtype == np.uint8 and p.image.shape == (96, 96, 3) for p in patterns)
