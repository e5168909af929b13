"""Published pretrained weights for HiFiC's architecture, converted into this toolkit's models.

Two families (README "Published models"), both named like the shipped models (``hific.load("msillm-q3")``):

* NeuralCompression (facebookresearch/NeuralCompression; code MIT, weights CC-BY-NC 4.0): MS-ILLM (Muckley et al.,
  ICML 2023) and its No-GAN baseline, ``msillm-q1..q6``, ``msillm-vlo1/vlo2`` and ``noganms-q1..q6``
  (neuralcompression/zoo/_msillm.py, _noganms.py). Each file is a plain state dict of its ``HiFiCAutoencoder``.
* The PyTorch port (Justin-Tan/high-fidelity-generative-compression, Apache-2.0): HIFIC-low/med/high of its README,
  ``port-hific-low/med/high`` (Zenodo record 4026003). Each file is a dict with ``model_state_dict`` (prefixes
  ``Encoder.``, ``Generator.``, ``Hyperprior.``, ``Discriminator.``) and ``args``.

Files are fetched with ``torch.hub.load_state_dict_from_url`` into torch's hub cache
(``$TORCH_HOME/hub/checkpoints/<file>``), so a file already there, or copied there, is used offline. The
architecture differences are ModelConfig options (the ``neuralcompression`` and ``port`` configurations); a
converter only renames parameters and fills in what the other code computes on the fly. The CDF tables a file
may hold are rebuilt by our code, as for our own checkpoints. tests/test_published.py proves both converters exact
against the publishers' own code on random weights.
"""
from __future__ import annotations

import dataclasses
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

import numpy as np
import torch
from compressai.entropy_models import EntropyBottleneck
from compressai.models.utils import remap_old_keys

from hific.config import ModelConfig, model_config
from hific.errors import ModelNotFoundError
from hific.weights import cache_dir

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Family:
    """Who published a set of weights, and under which licence."""

    key: str              # also the name of the ModelConfig of its architecture (config.MODEL_CONFIGS)
    source: str
    licence: str
    licence_url: str
    non_commercial: bool  # users are told once, on first use

    def metadata(self) -> dict:
        return {"source": self.source, "licence": self.licence, "licence_url": self.licence_url}


NEURALCOMPRESSION = Family(
    "neuralcompression", "facebookresearch/NeuralCompression", "CC-BY-NC 4.0 (non-commercial use only)",
    "https://github.com/facebookresearch/NeuralCompression/blob/main/WEIGHTS_LICENSE", non_commercial=True)
PORT = Family(
    "port", "Justin-Tan/high-fidelity-generative-compression", "Apache-2.0",
    "https://github.com/Justin-Tan/high-fidelity-generative-compression/blob/master/LICENSE", non_commercial=False)


@dataclass(frozen=True)
class Published:
    """One published file: its name here, where it comes from, what it is."""

    name: str
    family: Family
    title: str
    target_bpp: float
    url: str

    @property
    def filename(self) -> str:
        """The file's name in the hub cache (torch.hub's rule: the URL path's last part)."""
        return Path(urlparse(self.url).path).name

    def cache_path(self) -> Path:
        return Path(torch.hub.get_dir()) / "checkpoints" / self.filename

    def cached(self) -> bool:
        return self.cache_path().exists()

    def description(self) -> str:
        return f"{self.title}, target {self.target_bpp:g} bpp ({self.family.source})"


NC_URL = "https://dl.fbaipublicfiles.com/NeuralCompression/2023-muckley-msillm/{kind}_target_{rate:g}bpp.ckpt"
NC_RATES = (0.035, 0.07, 0.14, 0.3, 0.45, 0.9)
MSILLM_VERY_LOW_RATES = (0.00218, 0.00438)
PORT_URL = "https://zenodo.org/records/4026003/files/{file}"
PORT_MODELS = (("low", "hific_low.pt", 0.14), ("med", "hific_med.pt", 0.30), ("high", "hific_hi.pt", 0.45))


def _registry() -> dict[str, Published]:
    """Every published file by name."""
    entries = [Published(f"msillm-q{q}", NEURALCOMPRESSION, "MS-ILLM", r, NC_URL.format(kind="msillm", rate=r))
               for q, r in enumerate(NC_RATES, 1)]
    entries += [Published(f"msillm-vlo{q}", NEURALCOMPRESSION, "MS-ILLM (very low rate)", r, NC_URL.format(kind="msillm", rate=r))
                for q, r in enumerate(MSILLM_VERY_LOW_RATES, 1)]
    entries += [Published(f"noganms-q{q}", NEURALCOMPRESSION, "No-GAN (MS-ILLM's baseline)", r,
                          NC_URL.format(kind="noganms", rate=r)) for q, r in enumerate(NC_RATES, 1)]
    entries += [Published(f"port-hific-{tag}", PORT, f"HIFIC-{tag} (PyTorch port)", r, PORT_URL.format(file=f))
                for tag, f, r in PORT_MODELS]
    return {e.name: e for e in entries}


REGISTRY: dict[str, Published] = _registry()


def fetch(entry: Published) -> dict:
    """The file's contents, from torch's hub cache or downloaded into it first (a progress bar on a terminal);
    one clear line when neither works."""
    path = entry.cache_path()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(entry.url, str(path), progress=sys.stderr.isatty())
        except Exception as e:  # URLError, HTTPError, socket errors...
            raise ModelNotFoundError(f"{entry.name}: not in the torch hub cache and cannot be downloaded "
                                     f"({type(e).__name__}); download {entry.url} to {path}") from None
    try:
        return torch.hub.load_state_dict_from_url(entry.url, map_location="cpu", weights_only=True,
                                                  file_name=entry.filename)
    except Exception as e:  # unpickling and zip errors come in many types
        raise ModelNotFoundError(f"{path}: not a readable checkpoint ({type(e).__name__})") from None


def announce(family: Family) -> None:
    """Tell the user a non-commercial licence applies, the first time such weights are used on this machine."""
    marker = cache_dir() / "licence-notices" / family.key
    if not family.non_commercial or marker.exists():
        return
    warnings.warn(f"weights from {family.source} are licensed {family.licence}: {family.licence_url}", stacklevel=2)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()


Rule = tuple[str, str | Callable[[re.Match], str]]


def _rename(state: StateDict, rules: tuple[Rule, ...]) -> StateDict:
    """Every key rewritten by each rule in turn (``re.sub``, at most once per rule)."""
    out = {}
    for key, value in state.items():
        for pattern, replacement in rules:
            key = re.sub(pattern, replacement, key, count=1)
        out[key] = value
    return out


def _count(state: dict, pattern: str) -> int:
    """How many distinct indices the first group of ``pattern`` takes over the keys."""
    return len({m.group(1) for k in state if (m := re.match(pattern, k))})


def _shape(state: dict, key: str, dim: int, where: str) -> int:
    try:
        return int(state[key].shape[dim])
    except (KeyError, AttributeError, IndexError):
        raise ModelNotFoundError(f"{where}: no {key} of the expected shape; not a complete checkpoint") from None


# ChannelNorm2D's affine parameters are gamma and beta in both families.
_CHANNEL_NORM = ((r"\.gamma$", ".weight"), (r"\.beta$", ".bias"))

# neuralcompression/models/_hific_encoder_decoder.py and _hific_autoencoder.py -> hific.{encoder,generator,hyperprior}
NC_RULES: tuple[Rule, ...] = (
    (r"^encoder\.blocks\.", "encoder.net."),
    (r"^decoder\.block_0\.", "generator.head."),
    (r"^decoder\.resid_blocks\.(\d+)\.sequence\.", r"generator.residual.\1.body."),
    (r"^decoder\.blocks\.4\.", "generator.tail."),
    (r"^decoder\.blocks\.", "generator.upsample."),
    (r"^hyper_analysis\.", "prior.h_a."),
    (r"^hyper_synthesis_mean\.", "prior.h_s_means."),
    (r"^hyper_synthesis_scale\.", "prior.h_s_scales."),
    (r"^hyper_bottleneck\.", "prior.entropy_bottleneck."),
    (r"^latent_bottleneck\.", "prior.gaussian_conditional."),
    *_CHANNEL_NORM,
)


def _from_neuralcompression(state: StateDict, where: str) -> tuple[ModelConfig, StateDict]:
    """A HiFiCAutoencoder state dict -> (its ModelConfig, our state dict). Widths come from the file; CompressAI's
    pre-1.2 names of the bottleneck (``_matrix0``...) are mapped as CompressAI's own loader does."""
    state = remap_old_keys("hyper_bottleneck", state)
    config = dataclasses.replace(
        model_config(NEURALCOMPRESSION.key),
        latent_channels=_shape(state, "encoder.blocks.5.weight", 0, where),
        hyperprior_filters=_shape(state, "hyper_analysis.0.weight", 0, where),
        residual_blocks=_count(state, r"decoder\.resid_blocks\.(\d+)\."))
    return config, _rename(state, NC_RULES)


def _index(template: str, offset: int, scale: int = 1) -> Callable[[re.Match], str]:
    """A replacement filling ``template``'s {} with scale * (the match's first group - offset)."""
    return lambda m: template.format(scale * (int(m.group(1)) - offset))


# src/network/{encoder,generator,hyper}.py and src/compression/hyperprior_model.py -> hific.*
PORT_RULES: tuple[Rule, ...] = (
    (r"^Encoder\.conv_block_out\.1\.", "encoder.net.5."),
    (r"^Encoder\.conv_block(\d)\.1\.", _index("encoder.net.{}.0.", 1)),
    (r"^Encoder\.conv_block(\d)\.2\.", _index("encoder.net.{}.1.", 1)),
    (r"^Generator\.conv_block_init\.0\.", "generator.head.0."),
    (r"^Generator\.conv_block_init\.2\.", "generator.head.1."),
    (r"^Generator\.conv_block_init\.3\.", "generator.head.2."),
    (r"^Generator\.resblock_(\d+)\.conv1\.", r"generator.residual.\1.body.0."),
    (r"^Generator\.resblock_(\d+)\.norm1\.", r"generator.residual.\1.body.1."),
    (r"^Generator\.resblock_(\d+)\.conv2\.", r"generator.residual.\1.body.3."),
    (r"^Generator\.resblock_(\d+)\.norm2\.", r"generator.residual.\1.body.4."),
    (r"^Generator\.upconv_block(\d)\.", _index("generator.upsample.{}.", 1)),
    (r"^Generator\.conv_block_out\.1\.", "generator.tail."),
    (r"^Hyperprior\.analysis_net\.conv(\d)\.", _index("prior.h_a.{}.", 1, 2)),
    (r"^Hyperprior\.synthesis_mu\.conv(\d)\.", _index("prior.h_s_means.{}.", 1, 2)),
    (r"^Hyperprior\.synthesis_std\.conv(\d)\.", _index("prior.h_s_scales.{}.", 1, 2)),
    (r"^Hyperprior\.hyperlatent_likelihood\.H_(\d)$", r"prior.entropy_bottleneck.matrices.\1"),
    (r"^Hyperprior\.hyperlatent_likelihood\.a_(\d)$", r"prior.entropy_bottleneck.factors.\1"),
    (r"^Hyperprior\.hyperlatent_likelihood\.b_(\d)$", r"prior.entropy_bottleneck.biases.\1"),
    *_CHANNEL_NORM,
)
# The discriminator, and the entropy coder's tables (with a second reference to the density) of an evaluation model.
PORT_IGNORED = ("Discriminator.", "Hyperprior.hyperprior_entropy_model.", "Hyperprior.prior_entropy_model.")
# The port's args this converter reproduces only at these values (its src/model.py also knows the others).
PORT_FIXED = {"use_channel_norm": True, "sample_noise": False, "use_latent_mixture_model": False}
PORT_LIKELIHOODS = ("gaussian", "logistic")
BOTTLENECK = "prior.entropy_bottleneck."


def _port_options(args: dict, where: str) -> dict:
    """The ModelConfig options of the port's args; one clear line for args the converter does not support."""
    for key, value in PORT_FIXED.items():
        if args.get(key, value) != value:
            raise ModelNotFoundError(f"{where}: the port's {key}={args[key]!r} is not supported (only {value!r})")
    likelihood = args.get("likelihood_type", "gaussian")
    if likelihood not in PORT_LIKELIHOODS:
        raise ModelNotFoundError(f"{where}: the port's likelihood_type={likelihood!r} is not supported "
                                 f"(only {', '.join(PORT_LIKELIHOODS)})")
    return {"latent_likelihood": likelihood,
            "input_range": "symmetric" if args.get("normalize_input_image") else "unit"}


def _port_quantiles(state: StateDict, config: ModelConfig, where: str) -> torch.Tensor:
    """CompressAI's quantiles of the converted density (its 1e-9 / 2 tails and median), found by bisection as the
    auxiliary loss would learn them. The tails are widened to whole numbers, so that the weights' fingerprint does
    not hang on the last bit of a platform's arithmetic; the median stays as found (with hyperlatent_offset "zero"
    it is not used for coding)."""
    bottleneck = EntropyBottleneck(config.hyperprior_filters, filters=config.hyperlatent_filters)
    density = {k[len(BOTTLENECK):]: v for k, v in state.items() if k.startswith(BOTTLENECK)}
    if not all(torch.isfinite(v).all() for v in density.values()):  # the bisection would never end
        raise ModelNotFoundError(f"{where}: the hyper-latent density holds non-finite values")
    try:
        torch.nn.Module.load_state_dict(bottleneck, density, strict=False)
    except RuntimeError:
        raise ModelNotFoundError(f"{where}: the hyper-latent density does not fit {config.hyperlatent_filters}") from None
    bottleneck._update_quantiles()
    q = bottleneck.quantiles.detach()
    return torch.stack((q[..., 0].floor(), q[..., 1], q[..., 2].ceil()), dim=-1)


def _from_port(blob: dict, where: str) -> tuple[ModelConfig, StateDict]:
    """The port's checkpoint -> (its ModelConfig, our state dict).

    Its hyper-synthesis ends in a ConvTranspose2d(3x3, stride 1), our conv3x3 with the kernel transposed and
    flipped; its density (filters 3, 3, 3 with a tanh factor on every layer) becomes CompressAI's filters
    (3, 3, 3, 1) whose last 1 -> 1 layer is the identity (softplus(log(e - 1)) = 1, bias 0).
    """
    state = {k: v for k, v in blob["model_state_dict"].items() if not k.startswith(PORT_IGNORED)}
    config = dataclasses.replace(
        model_config(PORT.key), **_port_options(blob["args"], where),
        latent_channels=_shape(state, "Encoder.conv_block_out.1.weight", 0, where),
        hyperprior_filters=_shape(state, "Hyperprior.analysis_net.conv1.weight", 0, where),
        residual_blocks=_count(state, r"Generator\.resblock_(\d+)\."))
    state = _rename(state, PORT_RULES)
    for branch in ("h_s_means", "h_s_scales"):
        key = f"prior.{branch}.4.weight"
        if key in state:
            state[key] = state[key].transpose(0, 1).flip(-2, -1)
    n = config.hyperprior_filters
    last = len(config.hyperlatent_filters)
    state[f"{BOTTLENECK}matrices.{last}"] = torch.full((n, 1, 1), float(np.log(np.expm1(1.0))))
    state[f"{BOTTLENECK}biases.{last}"] = torch.zeros(n, 1, 1)
    state[f"{BOTTLENECK}quantiles"] = _port_quantiles(state, config, where)
    return config, state


def family_of(blob: dict) -> Family | None:
    """The family whose format ``blob`` (a loaded file) is in, if any."""
    if isinstance(blob.get("model_state_dict"), dict) and isinstance(blob.get("args"), dict):
        return PORT
    if any(isinstance(k, str) and k.startswith("hyper_bottleneck.") for k in blob):
        return NEURALCOMPRESSION
    return None


def convert(blob: dict, where: str) -> tuple[ModelConfig, StateDict, Family]:
    """(ModelConfig, our state dict, family) of a published file's contents; ``where`` names it in errors."""
    family = family_of(blob)
    if family is None:
        raise ModelNotFoundError(f"{where}: not a hific checkpoint, nor a NeuralCompression or PyTorch-port one")
    if family is PORT:
        config, state = _from_port(blob, where)
    else:
        config, state = _from_neuralcompression(blob, where)
    return config, state, family
