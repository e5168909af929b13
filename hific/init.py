"""Initialisation of HiFiC's networks as in the official code (tensorflow/compression models/hific).

E and G are Keras layers there, whose defaults are Glorot-uniform kernels and zero biases
(``tf.keras.layers.Conv2D`` / ``Conv2DTranspose``); D is built with compare_gan's ``arch_ops.conv2d``,
whose default is a normal initialiser with standard deviation 0.02 and zero biases. PyTorch's default
(Kaiming-uniform with a = sqrt(5), uniform biases) differs; P keeps it, as CompressAI's models do.
"""
from __future__ import annotations

from torch import nn

CONVS = (nn.Conv2d, nn.ConvTranspose2d)


def glorot_uniform_(module: nn.Module) -> nn.Module:
    """Keras' defaults for every convolution in ``module``: Glorot-uniform kernels, zero biases."""
    for layer in module.modules():
        if isinstance(layer, CONVS):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    return module


def normal_002_(module: nn.Module) -> nn.Module:
    """compare_gan's defaults for every convolution in ``module``: N(0, 0.02^2) kernels, zero biases.
    Call before spectral normalisation is registered (it reparametrises ``weight``)."""
    for layer in module.modules():
        if isinstance(layer, CONVS):
            nn.init.normal_(layer.weight, std=0.02)
            nn.init.zeros_(layer.bias)
    return module
