"""The original FeatureMapVisualizer's hot paths, timed for `cargo xtask bench --torch PYTHON`.

Reproduces what the original package does per call (reference README, sections 2.1-2.8):
`find_unique_filters` preprocesses each image with Pillow (RGB, Resize((224, 224)), ToTensor),
registers a forward hook that is never removed, runs the full model on an input that requires
grad, and takes the hooked map's spatial means; `visualize_patterns` runs Adam on a
sigmoid-parameterised image with cv2 INTER_CUBIC upscaling. Like the original's constructor,
it sets `requires_grad=False` on every parameter, so a backward pass computes the input's
gradient only. `FMV_BENCH_DEVICE=cuda` runs on the GPU, as the original does by default
(`use_cuda=True`); timings then wait for the GPU (`torch.cuda.synchronize`), and cuDNN may
use TF32 as torch allows by default unless `FMV_BENCH_TF32=0`. Prints one JSON object.

usage: original.py MODE WEIGHTS.safetensors ARCH LAYER [ARGS...], MODE one of
  forward RUNS             plain torch forward to the logits, batch 1 and 8 (ms per image)
  rank TRAIN_DIR           find_unique_filters over every class folder (seconds)
  step FILTER SIZE STEPS   one visualize_patterns optimisation step at SIZE (seconds per step)
  patterns FILTERS SCALES  visualize_patterns with the default schedule cut to SCALES, once per
                           filter of the comma-separated FILTERS, as a user of the original
                           calls it (seconds for all)
  robust_step FILTERS SIZE STEPS
                           the PyTorch side of fmv's robust step: Adam on a batch of SIZE px
                           images, one per filter of FILTERS, forward to the hooked layer only
                           (after its ReLU), input gradient only ([wall-clock, CPU] seconds
                           per step over STEPS steps after 3 warm-up steps)
"""
import json
import os
import sys
import time

import cv2
import numpy as np
import torch
import torchvision
from PIL import Image
from safetensors.torch import load_file
from torchvision import transforms

mode, weights, arch, layer = sys.argv[1:5]
args = sys.argv[5:]
layer = int(layer)
torch.set_num_threads(int(os.environ.get("FMV_BENCH_THREADS", "2")))
device = torch.device(os.environ.get("FMV_BENCH_DEVICE", "cpu"))
# torch's default lets cuDNN convolutions round their inputs to TF32 on the GPU;
# FMV_BENCH_TF32=0 keeps them in f32, as fmv computes.
torch.backends.cudnn.allow_tf32 = os.environ.get("FMV_BENCH_TF32", "1") != "0"

model = getattr(torchvision.models, arch)()
missing, unexpected = model.load_state_dict(load_file(weights), strict=False)
assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
model.eval().to(device)
for p in model.parameters():  # as the original's constructor does
    p.requires_grad = False


def sync():
    """Waits for the GPU's queued work, so that a timer reads finished work."""
    if device.type == "cuda":
        torch.cuda.synchronize()


class SaveFeatures:
    def __init__(self, module):
        self.hook = module.register_forward_hook(self.hook_fn)

    def hook_fn(self, module, input, output):
        self.features = output


def hooked_module():
    if arch.startswith("resnet"):
        return model.layer4[layer]
    convs = [m for m in list(model.children())[0] if isinstance(m, torch.nn.Conv2d)]
    return convs[layer]


def make_img_var(path):
    img = Image.open(path).convert("RGB")
    x = transforms.ToTensor()(transforms.Resize((224, 224))(img))[:3]
    return x.unsqueeze(0).to(device).requires_grad_(True)


def one_image_means(path):
    activations = SaveFeatures(hooked_module())  # never removed, as in the original
    model(make_img_var(path))
    return activations.features[0].mean((1, 2)).detach().cpu().numpy()


def find_unique_filters(train_dir, classes, n_each_img=25, n_each_class=25):
    tops = {}
    for cls in classes:
        folder = os.path.join(train_dir, cls)
        lists = []
        for f in sorted(os.listdir(folder)):
            v = one_image_means(os.path.join(folder, f))
            lists.append(np.argsort(-v, kind="stable")[:n_each_img])
        counts = np.zeros(2048 if arch.startswith("resnet") else 512)
        for lst in lists:
            counts[lst] += 1
        tops[cls] = list(np.argsort(-counts, kind="stable")[:n_each_class])
    return {c: [i for i in t if all(i not in tops[o] for o in tops if o != c)] for c, t in tops.items()}


def visualize_patterns(filter_n, scales, init_size=33, lr=0.2, opt_steps=20, upscaling_factor=1.2):
    activations = SaveFeatures(hooked_module())
    sz = init_size
    img = np.uint8(np.random.uniform(150, 180, (sz, sz, 3))) / 255
    for u in range(scales):
        x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))[None].astype(np.float32))
        x = x.to(device).requires_grad_(True)
        opt = torch.optim.Adam([x], lr=lr, weight_decay=1e-6)
        for _ in range(opt_steps):
            opt.zero_grad()
            model(torch.sigmoid(x))
            loss = -activations.features[0, filter_n].mean()
            loss.backward()
            opt.step()
        if u < scales - 1:
            img = x.detach().cpu().numpy()[0].transpose(1, 2, 0)
            sz = int(upscaling_factor * sz)
            img = cv2.resize(img, (sz, sz), interpolation=cv2.INTER_CUBIC)
    activations.hook.remove()


def forward(runs):
    out = []
    for batch in (1, 8):
        x = torch.rand(batch, 3, 224, 224, device=device)
        with torch.no_grad():
            model(x)
            sync()
            times = []
            for _ in range(runs):
                start = time.perf_counter()
                model(x)
                sync()
                times.append(time.perf_counter() - start)
        out.append(min(times) * 1e3 / batch)
    return out


def step(filter_n, size, steps):
    activations = SaveFeatures(hooked_module())
    x = torch.rand(1, 3, size, size, device=device).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=0.2, weight_decay=1e-6)

    def one():
        opt.zero_grad()
        model(torch.sigmoid(x))
        (-activations.features[0, filter_n].mean()).backward()
        opt.step()

    per_step = seconds_per_call(one, 1, steps)
    activations.hook.remove()
    return per_step


def seconds_per_call(one, warm_up, calls):
    """Seconds per call of `one` over `calls` calls, after `warm_up` calls."""
    return seconds_and_cpu_per_call(one, warm_up, calls)[0]


def seconds_and_cpu_per_call(one, warm_up, calls):
    """Wall-clock and CPU seconds (all threads) per call of `one` over `calls` calls, after
    `warm_up` calls."""
    for _ in range(warm_up):
        one()
    sync()
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        one()
    sync()
    return [(time.perf_counter() - start) / calls, (time.process_time() - cpu) / calls]


class _Stop(Exception):
    """Ends a forward pass at the hooked layer."""


def robust_step(filters, size, steps):
    feats = {}

    def stop(module, input, output):
        feats["out"] = torch.relu(output) if arch.startswith("vgg") else output
        raise _Stop

    hook = hooked_module().register_forward_hook(stop)
    x = torch.rand(len(filters), 3, size, size, device=device).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=0.05)

    def one():
        opt.zero_grad()
        try:
            model(x)
        except _Stop:
            pass
        out = feats["out"]
        (-sum(out[i, f].mean() for i, f in enumerate(filters))).backward()
        opt.step()

    per_step = seconds_and_cpu_per_call(one, 3, steps)
    hook.remove()
    return per_step


np.random.seed(0)
start = time.perf_counter()
if mode == "forward":
    result = forward(int(args[0]))
elif mode == "rank":
    find_unique_filters(args[0], sorted(os.listdir(args[0])))
    result = time.perf_counter() - start
elif mode == "step":
    result = step(int(args[0]), int(args[1]), int(args[2]))
elif mode == "robust_step":
    result = robust_step([int(f) for f in args[0].split(",")], int(args[1]), int(args[2]))
elif mode == "patterns":
    for filter_n in args[0].split(","):
        visualize_patterns(int(filter_n), int(args[1]))
    sync()
    result = time.perf_counter() - start
else:
    sys.exit(f"unknown mode {mode}")
print(json.dumps({"result": result}))
