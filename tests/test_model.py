"""The networks match the paper's architecture (issue: parameter counts, ChannelNorm, shapes), and every learned
model has CompressAI's interface."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from compressai.entropy_models import EntropyBottleneck
from compressai.models import CompressionModel
from compressai.models.base import get_scale_table

from hific import zoo
from hific.channel_norm import ChannelNorm
from hific.config import model_config, scale_table
from hific.discriminator import Discriminator
from hific.model import HiFiC


def conv(cin: int, cout: int, k: int) -> int:
    return cin * cout * k * k + cout


def norm(c: int) -> int:
    return 2 * c


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def expected_encoder(ch=(60, 120, 240, 480, 960), latent=220) -> int:
    total = conv(3, ch[0], 7) + norm(ch[0])
    total += sum(conv(a, b, 3) + norm(b) for a, b in zip(ch[:-1], ch[1:]))
    return total + conv(ch[-1], latent, 3)


def expected_generator(width=960, latent=220, blocks=9, up=(480, 240, 120, 60)) -> int:
    total = norm(latent) + conv(latent, width, 3) + norm(width)
    total += blocks * 2 * (conv(width, width, 3) + norm(width))
    chain = (width, *up)
    total += sum(conv(a, b, 3) + norm(b) for a, b in zip(chain[:-1], chain[1:]))
    return total + conv(up[-1], 3, 7)


def expected_hyperprior_convs(n=320, latent=220) -> int:
    analysis = conv(latent, n, 3) + 2 * conv(n, n, 5)
    branch = 2 * conv(n, n, 5) + conv(n, latent, 3)
    return analysis + 2 * branch


def expected_discriminator(latent=220, cond=12, ch=(64, 128, 256, 512)) -> int:
    total = conv(latent, cond, 3)
    chain = (3 + cond, *ch)
    total += sum(conv(a, b, 4) for a, b in zip(chain[:-1], chain[1:]))
    return total + conv(ch[-1], 1, 4)


def test_paper_parameter_counts_follow_the_architecture() -> None:
    model = HiFiC.from_config("paper")
    assert n_params(model.encoder) == expected_encoder() == 7_423_420
    assert n_params(model.generator) == expected_generator() == 156_774_683
    prior_convs = sum(n_params(m) for m in (model.prior.h_a, model.prior.h_s_means, model.prior.h_s_scales))
    assert prior_convs == expected_hyperprior_convs() == 17_263_480
    assert n_params(Discriminator(model_config("paper"))) == expected_discriminator() == 2_800_797


def test_small_is_the_same_topology_narrower() -> None:
    paper, small = HiFiC.from_config("paper"), HiFiC.from_config("small")
    shape = lambda m: [type(x).__name__ for x in m.modules()]  # noqa: E731
    assert shape(paper) == shape(small)
    cfg = model_config("small")
    assert n_params(small.encoder) == expected_encoder(cfg.encoder_channels, cfg.latent_channels)
    assert n_params(small.generator) == expected_generator(cfg.generator_channels, cfg.latent_channels,
                                                           cfg.residual_blocks, cfg.generator_up_channels)
    # Half-precision weights fit the 25 MB checkpoint budget.
    assert n_params(small) * 2 < 25e6


def test_small_variants_change_only_what_they_name_at_about_the_same_cost() -> None:
    """``small-wide``: G's high-resolution layers twice as wide, 5 residual blocks, within 10% of ``small``'s
    FLOPs (E, P and G on a 256x256 crop); ``small-zeros``: the official zero padding, the same weights' shapes;
    ``small-wide-zeros``: both."""
    from torch.utils.flop_counter import FlopCounterMode

    def flops(name: str) -> int:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            HiFiC.from_config(name)(torch.rand(1, 3, 256, 256))
        return counter.get_total_flops()

    wide = model_config("small-wide")
    assert (wide.residual_blocks, wide.generator_up_channels) == (5, (192, 96, 48, 24))
    assert n_params(HiFiC.from_config("small-wide").generator) == expected_generator(
        wide.generator_channels, wide.latent_channels, 5, wide.generator_up_channels)
    assert 0.9 < flops("small-wide") / flops("small") < 1.0
    zeros = HiFiC.from_config("small-zeros")
    assert {k: v.shape for k, v in zeros.state_dict().items()} == \
        {k: v.shape for k, v in HiFiC.from_config("small").state_dict().items()}
    def zero_padded(model: torch.nn.Module) -> bool:
        return not any(getattr(m, "padding_mode", "zeros") != "zeros" or type(m).__name__.startswith("Reflection")
                       for m in model.modules())

    assert zero_padded(zeros) and not zero_padded(HiFiC.from_config("small"))
    both = HiFiC.from_config("small-wide-zeros")  # ``small-wide-zeros``: both changes
    assert zero_padded(both) and {k: v.shape for k, v in both.state_dict().items()} == \
        {k: v.shape for k, v in HiFiC.from_config("small-wide").state_dict().items()}


def test_channel_norm_matches_its_formula() -> None:
    torch.manual_seed(0)
    cn = ChannelNorm(8, eps=1e-3)
    with torch.no_grad():
        cn.weight.uniform_(0.5, 2.0)
        cn.bias.uniform_(-1.0, 1.0)
    x = torch.randn(2, 8, 5, 7, dtype=torch.float64) * 3 + 1
    cn = cn.double()
    xn = x.numpy()
    mean = xn.mean(axis=1, keepdims=True)
    var = xn.var(axis=1, ddof=1, keepdims=True)  # unbiased, as the official code
    expected = (xn - mean) / np.sqrt(var + 1e-3) * cn.weight.detach().numpy() + cn.bias.detach().numpy()
    np.testing.assert_allclose(cn(x).detach().numpy(), expected, rtol=1e-10, atol=1e-10)


def test_channel_norm_output_does_not_depend_on_spatial_size() -> None:
    torch.manual_seed(1)
    cn = ChannelNorm(16)
    big = torch.randn(1, 16, 64, 96) * 5 + 2
    crop = big[:, :, 10:30, 20:50]
    torch.testing.assert_close(cn(big)[:, :, 10:30, 20:50], cn(crop))
    # InstanceNorm, which the paper replaces, fails this property.
    inorm = torch.nn.InstanceNorm2d(16)
    assert not torch.allclose(inorm(big)[:, :, 10:30, 20:50], inorm(crop), atol=1e-3)


@pytest.mark.parametrize("h,w", [(64, 64), (128, 192)])
def test_shapes_through_the_networks(h: int, w: int) -> None:
    model = HiFiC.from_config("small")
    x = torch.rand(2, 3, h, w)
    out = model(x)
    assert out["y_hat"].shape == (2, 220, h // 16, w // 16)
    assert out["x_hat"].shape == x.shape
    assert out["likelihoods"]["y"].shape == out["y_hat"].shape
    assert out["likelihoods"]["z"].shape == (2, 128, h // 64, w // 64)
    assert all(((lik > 0) & (lik <= 1)).all() for key in ("likelihoods", "likelihoods_q") for lik in out[key].values())
    logits = Discriminator(model_config("small"))(x, out["y_hat"])
    assert logits.shape == (2, 1, h // 8, w // 8)


def test_generator_receives_latents_rounded_around_the_mean() -> None:
    """G's input is round(y - mu) + mu (official code), with a straight-through gradient."""
    torch.manual_seed(2)
    model = HiFiC.from_config("small").eval()  # eval: z is rounded, so the means are reproducible
    seen = {}
    model.generator.register_forward_pre_hook(lambda m, args: seen.setdefault("y_hat", args[0]))
    x = torch.rand(1, 3, 64, 64)
    out = model(x)
    y = model.encoder(x)
    _, means, _ = model.prior(y)
    torch.testing.assert_close(seen["y_hat"], torch.round(y - means) + means)
    torch.testing.assert_close(out["y_hat"], seen["y_hat"])  # what D is conditioned on
    out["x_hat"].sum().backward()
    assert model.encoder.net[0][0].weight.grad.abs().sum() > 0  # gradient reaches E through the rounding


@pytest.mark.parametrize("kind", ["hific", "ms"])
def test_every_learned_model_has_compressai_s_interface(kind: str) -> None:
    """HiFiC and M&S are CompressAI CompressionModels built by one factory: forward gives x_hat and the likelihoods
    (in eval mode those of the quantised latents, which ``likelihoods`` gives without synthesis), aux_loss is the
    entropy bottleneck's, compress gives strings and a shape that decompress decodes, and a checkpoint's
    configuration rebuilds the same architecture."""
    torch.manual_seed(3)
    model = zoo.build_model(kind, "small").eval()
    assert isinstance(model, CompressionModel) and model.kind == kind
    again = zoo.build_model(kind, model.config_dict())
    assert {k: v.shape for k, v in again.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        out = model(x)
    assert out["x_hat"].shape == x.shape and set(out["likelihoods"]) == {"y", "z"}
    for key, lik in model.likelihoods(x).items():
        torch.testing.assert_close(lik, out["likelihoods"][key], rtol=0, atol=0)
    bottleneck = next(m for m in model.modules() if isinstance(m, EntropyBottleneck))
    assert float(model.aux_loss().detach()) == float(bottleneck.loss().detach()) > 0
    model.update(force=True)
    coded = model.compress(x)
    assert set(coded) == {"strings", "shape"} and len(coded["strings"]) == 2
    assert model.decompress(coded["strings"], coded["shape"])["x_hat"].shape == x.shape


def test_hific_codes_with_its_own_scale_table() -> None:
    """HiFiC's update() builds the Gaussian conditional on exp(linspace(log 0.11, log 256, 64)) computed as the
    official code does (float64), not on CompressAI's float32 default, which differs by up to 5e-5."""
    model = HiFiC.from_config("small")
    model.update(force=True)
    table = model.prior.gaussian_conditional.scale_table
    torch.testing.assert_close(table, torch.tensor(scale_table(), dtype=torch.float32), rtol=0, atol=0)
    assert not torch.equal(table, get_scale_table())
