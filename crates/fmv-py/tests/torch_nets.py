"""The two reference networks (`testdata/reference/weights/`) as live torch modules, built from
torchvision's own classes, for the tests that pass a module to `fmv.compat`. Imports torch."""

import torch
from torch import nn
from torchvision.models import resnet as tvr, vgg as tvv

from test_compat import REF
from test_fmv import read_safetensors


def state(name):
    """A reference network's weights as torch tensors."""
    path = REF / "weights" / f"{name}.safetensors"
    return {k: torch.from_numpy(v.copy()) for k, v in read_safetensors(path).items()}


def small_resnet50():
    """The reference small ResNet-50 (base width 8)."""
    m = tvr.ResNet.__new__(tvr.ResNet)
    nn.Module.__init__(m)
    m._norm_layer = nn.BatchNorm2d
    m.inplanes, m.dilation, m.groups, m.base_width = 8, 1, 1, 64
    m.conv1 = nn.Conv2d(3, 8, kernel_size=7, stride=2, padding=3, bias=False)
    m.bn1 = nn.BatchNorm2d(8)
    m.relu = nn.ReLU(inplace=True)
    m.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
    m.layer1 = m._make_layer(tvr.Bottleneck, 8, 3)
    m.layer2 = m._make_layer(tvr.Bottleneck, 16, 4, stride=2)
    m.layer3 = m._make_layer(tvr.Bottleneck, 32, 6, stride=2)
    m.layer4 = m._make_layer(tvr.Bottleneck, 64, 3, stride=2)
    m.avgpool = nn.AdaptiveAvgPool2d((1, 1))
    m.fc = nn.Linear(256, 2)
    m.load_state_dict(state("resnet50_small_seed1"))
    return m


def small_vgg16():
    """The reference small VGG-16 (widths / 8, a 64-wide head with 3 outputs)."""
    cfg = [8, 8, "M", 16, 16, "M", 32, 32, 32, "M", 64, 64, 64, "M", 64, 64, 64, "M"]
    m = tvv.VGG(tvv.make_layers(cfg), num_classes=3)
    m.classifier = nn.Sequential(nn.Linear(64 * 49, 64), nn.ReLU(True), nn.Dropout(),
                                 nn.Linear(64, 64), nn.ReLU(True), nn.Dropout(),
                                 nn.Linear(64, 3))
    m.load_state_dict(state("vgg16_small_seed1"))
    return m
