"""The model zoo: checkpoints on disk, the shipped models by name, CompressAI's published M&S weights and the
published HiFiC-architecture weights of :mod:`hific.published` (MS-ILLM, No-GAN, the PyTorch port's HiFiC).

A checkpoint is a ``torch.save`` dict (loadable with ``weights_only=True``)::

    {"format": "hific-checkpoint", "version": 1, "name": str, "kind": "hific" | "ms",
     "config": dict, "state_dict": {...}, "metadata": dict}

Entropy-coder tables are not stored; they are rebuilt deterministically on load.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hific import published
from hific.bitstream import MAX_NAME_BYTES
from hific.errors import HificError, ModelNotFoundError
from hific.image_io import atomic_write_bytes
from hific.mean_scale import MeanScale
from hific.model import HiFiC

CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"
FORMAT = "hific-checkpoint"
FORMAT_VERSION = 1
# CompressAI's published Mean & Scale hyperprior (Minnen et al. 2018, MSE) qualities: "ms-q1" .. "ms-q8".
COMPRESSAI_MS_QUALITIES = range(1, 9)
# Every learned model, by the kind a checkpoint names: CompressAI CompressionModels with one interface.
Model = HiFiC | MeanScale
MODELS: dict[str, type[Model]] = {cls.kind: cls for cls in (HiFiC, MeanScale)}


def learned_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's learned parameters. Its buffers are architecture constants (CompressAI's likelihood and scale
    bounds, GDN's pedestal, the entropy bottleneck's target) or the tables ``update()`` derives from the
    parameters: both come from the code, never from a checkpoint (in float16 CompressAI's 1e-9 likelihood bound
    flushes to 0, and -log2 of a zero likelihood is an infinite loss)."""
    return {k: v.detach() for k, v in model.named_parameters()}


def fingerprint(model: nn.Module) -> bytes:
    """First 4 bytes of the SHA-256 of the learned weights (float32, sorted by name)."""
    h = hashlib.sha256()
    for key, value in sorted(learned_state(model).items()):
        h.update(key.encode())
        h.update(value.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.digest()[:4]


def write_blob(blob: dict, path: str | Path) -> None:
    """``torch.save`` a dict atomically (temporary file + rename)."""
    buf = io.BytesIO()
    torch.save(blob, buf)
    atomic_write_bytes(path, buf.getvalue())


def read_blob(path: str | Path, error: type[HificError], what: str) -> dict:
    """``torch.load`` a dict safely (``weights_only``); ``error`` with one clear line when it cannot be read."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise error(f"{path}: no such {what}") from None
    except Exception as e:  # pickle/zip errors come in many types
        raise error(f"{path}: not a readable {what} ({type(e).__name__})") from None
    if not isinstance(blob, dict):
        raise error(f"{path}: not a hific {what}")
    return blob


def save_checkpoint(model: Model, path: str | Path, name: str, metadata: dict | None = None,
                    half: bool = True) -> Path:
    """Write an inference checkpoint atomically (weights in float16 when ``half``)."""
    state = {k: (v.half() if half and v.is_floating_point() else v).cpu() for k, v in learned_state(model).items()}
    write_blob({"format": FORMAT, "version": FORMAT_VERSION, "name": name, "kind": model.kind,
                "config": model.config_dict(), "state_dict": state, "metadata": metadata or {}}, path)
    return Path(path)


def build_model(kind: str, config: str | dict[str, Any]) -> Model:
    """The one model factory: an untrained model of a kind (``hific`` or ``ms``) and a configuration, named (a
    training preset's ``model``, e.g. ``small``) or as a checkpoint stores it (:meth:`config_dict`)."""
    if kind not in MODELS:
        raise ModelNotFoundError(f"unknown model kind {kind!r}; choose one of {', '.join(MODELS)}")
    return MODELS[kind].from_config(config)


def load_weights(model: Model, state: dict[str, torch.Tensor]) -> Model:
    """Load the learned parameters (as float32) and switch to eval mode (the Codec rebuilds the entropy-coder
    tables). Buffers in ``state`` are ignored: the model's own constants stand (see :func:`learned_state`;
    checkpoints written before it stored them in float16, with the likelihood bound flushed to 0)."""
    params = learned_state(model)
    known = params.keys() | dict(model.named_buffers()).keys()
    unexpected = [k for k in state if k not in known]
    state = {k: v.float() for k, v in state.items() if k in params}
    # nn.Module's method: CompressAI's override insists on the derived tables that checkpoints leave out.
    try:
        nn.Module.load_state_dict(model, state, strict=False)
    except RuntimeError as e:  # a tensor of another shape
        raise ModelNotFoundError(f"checkpoint does not fit the model: {str(e).splitlines()[-1].strip()}") from None
    missing = [k for k in params if k not in state]
    if missing or unexpected:
        raise ModelNotFoundError(f"checkpoint does not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return model.eval()


def _published_model(blob: dict, where: str) -> tuple[Model, dict]:
    """The model of a published file's contents (converted by :mod:`hific.published`) and its metadata; a
    non-commercial licence is announced on first use."""
    config, state, family = published.convert(blob, where)
    published.announce(family)
    return load_weights(HiFiC(config), state), family.metadata()


def load_checkpoint(path: str | Path) -> tuple[Model, str, dict]:
    """(model in eval mode, its name, its metadata) from a checkpoint file: ours, or a published file in its
    publisher's format (named after the file)."""
    blob = read_blob(path, ModelNotFoundError, "checkpoint")
    if blob.get("format") != FORMAT:
        model, metadata = _published_model(blob, str(path))
        return model, Path(path).stem.encode()[:MAX_NAME_BYTES].decode(errors="ignore"), metadata
    model = load_weights(build_model(blob["kind"], blob["config"]), blob["state_dict"])
    return model, blob["name"], blob.get("metadata", {})


def shipped() -> dict[str, Path]:
    """Name -> path of every checkpoint shipped with the package."""
    return {p.stem: p for p in sorted(CHECKPOINT_DIR.glob("*.pt"))}


def _compressai_ms(quality: int) -> Model:
    """CompressAI's pretrained M&S (``mbt2018-mean``, MSE): from the torch hub cache, else downloaded."""
    from compressai.zoo import mbt2018_mean

    try:
        pretrained = mbt2018_mean(quality=quality, metric="mse", pretrained=True)
    except Exception as e:  # URLError, HTTPError, socket errors...
        raise ModelNotFoundError(
            f"CompressAI's pretrained M&S quality {quality} is not in the torch hub cache "
            f"({torch.hub.get_dir()}/checkpoints) and cannot be downloaded ({type(e).__name__})") from None
    return MeanScale.from_state_dict(pretrained.state_dict()).eval()


def _compressai_url(quality: int) -> str:
    from compressai.zoo.image import model_urls

    return model_urls["mbt2018-mean"]["mse"][quality]


def _compressai_cache_path(quality: int) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / _compressai_url(quality).rsplit("/", 1)[-1]


@dataclass(frozen=True)
class ZooEntry:
    """One model a name loads: where its file is (here, or the URL it is fetched from) and whether it is here."""

    name: str
    status: str    # "shipped", "cached" or "not cached"
    source: str
    licence: str
    location: str

    @property
    def available(self) -> bool:
        return self.status != "not cached"


def catalogue() -> list[ZooEntry]:
    """Every named model: shipped, published (:mod:`hific.published`) and CompressAI's M&S, cached or not."""
    entries = [ZooEntry(name, "shipped", "this toolkit", "-", str(path)) for name, path in shipped().items()]
    for entry in published.REGISTRY.values():
        cached = entry.cached()
        entries.append(ZooEntry(entry.name, "cached" if cached else "not cached", entry.description(),
                                entry.family.licence, str(entry.cache_path()) if cached else entry.url))
    for q in COMPRESSAI_MS_QUALITIES:
        cached = _compressai_cache_path(q).exists()
        entries.append(ZooEntry(f"ms-q{q}", "cached" if cached else "not cached",
                                "CompressAI model zoo, mbt2018-mean (MSE)", "-",
                                str(_compressai_cache_path(q)) if cached else _compressai_url(q)))
    return entries


def available() -> list[str]:
    """Names that :func:`resolve` can load on this machine without a download."""
    return [entry.name for entry in catalogue() if entry.available]


def resolve(name_or_path: str | Path) -> tuple[Model, str, dict]:
    """(model, name, metadata) for a shipped name, ``ms-qN``, a published name, or a checkpoint path."""
    key = str(name_or_path)
    if key in shipped():
        return load_checkpoint(shipped()[key])
    if key.startswith("ms-q") and key[4:].isdigit() and int(key[4:]) in COMPRESSAI_MS_QUALITIES:
        return _compressai_ms(int(key[4:])), key, {"source": "CompressAI model zoo, mbt2018-mean (MSE)"}
    if key in published.REGISTRY:
        entry = published.REGISTRY[key]
        model, metadata = _published_model(published.fetch(entry), str(entry.cache_path()))
        return model, key, {**metadata, "url": entry.url, "target_bpp": entry.target_bpp}
    path = Path(key)
    if path.suffix in (".pt", ".ckpt") or path.exists():
        return load_checkpoint(path)
    known = ", ".join(available()) or "none shipped yet"
    raise ModelNotFoundError(f"unknown model {key!r}: not a checkpoint file nor a known name ({known}; "
                             "ms-q1..ms-q8 and the published models of 'hific models --all')")
