"""Makes transforms.json: what torchvision's (and timm's) eval transforms give on every reference
and format image. Needs torch 2.15 / torchvision 0.29 / timm 1.0 / Pillow 13.

    python testdata/torch/make_transforms.py

For each image (read as torchvision's ImageFolder does: `Image.open(p).convert("RGB")`) and each
configuration: the size after the resize, the sha256 of the cropped 8-bit image (rows of RGB
bytes) and of the final float32 tensor (C×H×W, little-endian), and the tensor's sum.
"""
import glob, hashlib, json, os
import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import functional as F
import timm.data

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
I = T.InterpolationMode

# name: (fmv's flags, Resize size, CenterCrop (h, w), interpolation)
configs = {
    "torchvision": (["--preprocess", "torchvision"], 256, (224, 224), I.BILINEAR),
    "timm_bicubic_crop_pct_0.95": (["--preprocess", "torchvision", "--resize", "235",
                                    "--interpolation", "bicubic"], 235, (224, 224), I.BICUBIC),
    "pad_and_crop": (["--preprocess", "torchvision", "--resize", "100", "--crop", "90x120"],
                     100, (120, 90), I.BILINEAR),
    "odd_sizes": (["--preprocess", "torchvision", "--resize", "161", "--crop", "131x97"],
                  161, (97, 131), I.BILINEAR),
}

# timm's own eval transform for a pretrained_cfg with crop_pct 0.95 and bicubic is the second
# configuration: checked here, so the flags above are what a timm config.json means.
timm_tf = timm.data.create_transform(input_size=(3, 224, 224), interpolation="bicubic",
                                     crop_pct=0.95, mean=MEAN, std=STD)

images = sorted(p for p in glob.glob(os.path.join(ROOT, "reference/data/**/*.*"), recursive=True)
                if not p.endswith(".json"))
images += sorted(p for p in glob.glob(os.path.join(ROOT, "formats/*"))
                 if not p.endswith((".py", ".json")))
out = {"torch": torch.__version__, "configs": {k: v[0] for k, v in configs.items()}, "images": {}}
for path in images:
    rel = os.path.relpath(path, ROOT)
    img = Image.open(path).convert("RGB")
    res = {}
    for name, (_, resize, crop, interp) in configs.items():
        resized = F.resize(img, resize, interpolation=interp)
        cropped = F.center_crop(resized, list(crop))
        x = T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)])(cropped)
        full = T.Compose([T.Resize(resize, interpolation=interp), T.CenterCrop(crop), T.ToTensor(),
                          T.Normalize(MEAN, STD)])(img)
        assert torch.equal(x, full), (rel, name)
        if name.startswith("timm"):
            assert torch.equal(timm_tf(img), x), rel
        res[name] = {
            "resized": list(resized.size),
            "crop_sha256": hashlib.sha256(np.asarray(cropped).tobytes()).hexdigest(),
            "tensor_sha256": hashlib.sha256(x.numpy().astype("<f4").tobytes()).hexdigest(),
            "tensor_sum": float(x.double().sum()),
        }
    out["images"][rel] = res
with open(os.path.join(HERE, "transforms.json"), "w") as f:
    json.dump(out, f, indent=1, sort_keys=True)
print(len(images), "images")
