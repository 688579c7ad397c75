"""The deterministic input the torch fixtures are computed on, and the Rust tests build
(`test_input` in `crates/fmv-models/tests/it/main.rs`)."""
import torch


def test_input(n, h, w):
    """An n×3×h×w batch of values in [0, 1]."""
    i = torch.arange(n).view(n, 1, 1, 1)
    c = torch.arange(3).view(1, 3, 1, 1)
    y = torch.arange(h).view(1, 1, h, 1)
    x = torch.arange(w).view(1, 1, 1, w)
    return (((i * 7 + c * 13 + y * 31 + x * 17) % 251).float() / 250.0)
