"""hific.published: the converted MS-ILLM / No-GAN (NeuralCompression) and PyTorch-port HiFiC models reproduce their
publishers' own code on random weights, load by name from a torch hub cache without a network, and every failure
is one line. No test downloads: files in the real formats are written from the publishers' classes."""
from __future__ import annotations

import dataclasses
import logging
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import hific
from hific import published, zoo
from hific.cli import main
from hific.config import ARCH_OPTIONS, ModelConfig
from hific.errors import ModelNotFoundError
from hific.image_io import read_image
from hific.model import HiFiC
from hific.padding import pad_amounts, pad_image

REPO = Path(__file__).resolve().parents[1]
JT_HIFIC = REPO.parent / "shared" / "third_party" / "jt-hific"  # the port's source (tests only, never copied)
TOL = 1e-4
NC_SIZES = [(64, 64), (72, 100)]  # a multiple of 64, and one that needs padding
PORT_SIZES = [(128, 128), (72, 100)]  # the port's reflect-padded h_a needs sides above 64; 72x100: two-stage padding


@pytest.fixture(autouse=True)
def licence_notices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first-use licence notices are remembered under a temporary $HIFIC_CACHE, not the user's."""
    monkeypatch.setenv("HIFIC_CACHE", str(tmp_path / "hific"))


def randomise_constants_(module: nn.Module, seed: int) -> nn.Module:
    """Noise on every parameter its initialiser leaves constant (the norms' unit scales and zero offsets, the
    densities' zero factors), so that the comparison exercises them."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if p.numel() > 1 and bool((p == p.flatten()[0]).all()):
                p.add_(torch.randn(p.shape, generator=g) * 0.1)
    return module


def spread_hyper_latent_(conv: nn.Conv2d, factor: float = 100.0) -> None:
    """Scale h_a's last conv: random weights give |z| < 0.1, which rounds to one value and leaves P untested."""
    with torch.no_grad():
        conv.weight.mul_(factor)
        conv.bias.mul_(factor)


def bits(likelihoods: torch.Tensor) -> float:
    return float(-torch.log2(likelihoods).sum())


def kodak_crop(kodak: Path, h: int, w: int) -> np.ndarray:
    return np.ascontiguousarray(read_image(kodak / "kodim23.png")[200:200 + h, 300:300 + w])


def as_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255


def assert_hfc_decodes_to(codec: hific.Codec, rgb: np.ndarray, theirs: torch.Tensor) -> None:
    """Our .hfc round trip gives the publisher's reconstruction (in [0, 1]), rounded to 8 bits."""
    decoded = codec.decompress(codec.compress(rgb))
    theirs = theirs[0].clamp(0, 1).permute(1, 2, 0).numpy()
    assert decoded.shape == theirs.shape
    assert np.abs(decoded / 255.0 - theirs).max() <= 0.5 / 255 + TOL


def assert_every_option_is_needed(path: Path, kodak: Path) -> None:
    """Each architecture option a published file converts to changes the reconstruction or the estimated bits of
    a Kodak crop when set back to its default: none is a no-op."""
    config, state, _ = published.convert(torch.load(path, weights_only=True), str(path))
    x = as_tensor(kodak_crop(kodak, 72, 100))

    def outcome(cfg: ModelConfig) -> tuple[torch.Tensor, float, float]:
        model = zoo.load_weights(HiFiC(cfg), state)
        model.update()
        padded = pad_image(x, *pad_amounts(72, 100, cfg.image_multiple, cfg.min_image_side))
        with torch.no_grad():
            likelihoods = model.likelihoods(padded)
            return model(padded)["x_hat"][..., :72, :100], bits(likelihoods["y"]), bits(likelihoods["z"])

    x_hat, y_bits, z_bits = outcome(config)
    default = ModelConfig("default")
    options = [f for f in ARCH_OPTIONS if getattr(config, f) != getattr(default, f)]
    assert options
    for field in options:
        other, other_y, other_z = outcome(dataclasses.replace(config, **{field: getattr(default, field)}))
        assert ((other - x_hat).abs().max() > 1e-2 or abs(other_y / y_bits - 1) > 1e-2
                or abs(other_z / z_bits - 1) > 1e-2), field


def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache in which a download attempt fails."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def no_download(url, *args, **kwargs):
        raise OSError(f"test: no network ({url})")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    return folder


# --- NeuralCompression (neuralcompression==0.3.1 from PyPI, installed without its dependencies) ---------------


@pytest.fixture(scope="module")
def nc_autoencoder():
    """NeuralCompression's HiFiCAutoencoder class; its fvcore import (FLOP counting) is stubbed."""
    with pytest.MonkeyPatch.context() as mp:
        for name in ("fvcore", "fvcore.nn", "fvcore.nn.jit_handles"):
            mp.setitem(sys.modules, name, types.ModuleType(name))
        sys.modules["fvcore.nn"].FlopCountAnalysis = object
        sys.modules["fvcore.nn.jit_handles"].Handle = object
        sys.modules["fvcore.nn.jit_handles"].generic_activation_jit = lambda *a, **k: None
        models = pytest.importorskip("neuralcompression.models")
    return models.HiFiCAutoencoder


@pytest.fixture(scope="module")
def nc_model(nc_autoencoder):
    """A random NeuralCompression model of reduced widths (E and G are fixed at HiFiC's), tables built."""
    torch.manual_seed(0)
    model = nc_autoencoder(latent_features=32, hyper_features=32, num_residual_blocks=2)
    randomise_constants_(model, seed=1)
    spread_hyper_latent_(model.hyper_analysis[4])
    model.update(force=True, update_quantiles=True)  # medians off 0, so the median offset is exercised
    return model.eval()


@pytest.fixture(scope="module")
def nc_file(nc_model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The model's state dict saved as NeuralCompression's zoo files are (a plain state dict, tables included)."""
    path = tmp_path_factory.mktemp("nc") / published.REGISTRY["msillm-q3"].filename
    torch.save(nc_model.state_dict(), path)
    return path


@pytest.mark.parametrize("h,w", NC_SIZES)
def test_neuralcompression_is_reproduced(nc_model, nc_file: Path, kodak: Path, h: int, w: int) -> None:
    """Their compress/decompress and forward against ours: reconstructions within 1e-4, the same estimated bits
    of y and z, and our .hfc round trip decoding to their reconstruction."""
    codec = hific.load(nc_file)
    assert codec.model.config.latent_channels == 32 and codec.model.config.residual_blocks == 2
    rgb = kodak_crop(kodak, h, w)
    x = as_tensor(rgb)
    with torch.no_grad():
        theirs = nc_model.decompress(nc_model.compress(x))
        padded = pad_image(x, *pad_amounts(h, w))
        coded = codec.model.compress(padded)
        ours = codec.model.decompress(coded["strings"], coded["shape"])["x_hat"][..., :h, :w]
        torch.testing.assert_close(ours, theirs, atol=TOL, rtol=0)
        out = nc_model(padded)
        torch.testing.assert_close(codec.model(padded)["x_hat"], out.image, atol=TOL, rtol=0)
        likelihoods = codec.model.likelihoods(padded)
    assert bits(likelihoods["y"]) == pytest.approx(bits(out.quantized_latent_likelihoods), rel=TOL)
    assert bits(likelihoods["z"]) == pytest.approx(bits(out.quantized_hyper_latent_likelihoods), rel=TOL)
    assert_hfc_decodes_to(codec, rgb, theirs)


def test_every_neuralcompression_option_is_needed(nc_file: Path, kodak: Path) -> None:
    assert_every_option_is_needed(nc_file, kodak)


def test_neuralcompression_loads_by_name_from_the_hub_cache(nc_file: Path, kodak: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    folder = hub_cache(tmp_path, monkeypatch)
    (folder / nc_file.name).symlink_to(nc_file)
    with pytest.warns(UserWarning, match="CC-BY-NC 4.0"):
        codec = hific.load("msillm-q3")
    assert codec.name == "msillm-q3" and codec.metadata["licence"].startswith("CC-BY-NC 4.0")
    assert codec.fingerprint == hific.load(nc_file).fingerprint
    assert "msillm-q3" in zoo.available() and "msillm-q4" not in zoo.available()
    image, out, rec = tmp_path / "in.png", tmp_path / "out.hfc", tmp_path / "rec.png"
    from PIL import Image

    Image.fromarray(kodak_crop(kodak, 64, 64)).save(image)
    assert main(["compress", str(image), str(out), "--model", "msillm-q3"]) == 0
    assert main(["decompress", str(out), str(rec)]) == 0  # the model named in the file, from the cache
    assert np.array_equal(read_image(rec), codec.decompress(out.read_bytes()))


def test_the_benchmark_codes_with_cached_published_models(nc_file: Path, kodak: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from hific.bench import codecs

    folder = hub_cache(tmp_path, monkeypatch)
    (folder / nc_file.name).symlink_to(nc_file)
    codec = codecs.get("msillm")
    assert codec.default_settings() == ["msillm-q3"] and codec.label("msillm-q3") == "msillm-q3"
    rgb = kodak_crop(kodak, 64, 64)
    assert codec.at("msillm-q3").decompress(codec.at("msillm-q3").compress(rgb)).shape == rgb.shape
    with pytest.raises(codecs.CodecUnavailableError, match="'noganms': no model available"):
        codecs.get("noganms").default_settings()


def test_licence_notice_is_shown_once(nc_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      recwarn: pytest.WarningsRecorder) -> None:
    hub_cache(tmp_path, monkeypatch)
    hific.load(nc_file)
    hific.load(nc_file)
    notices = [w for w in recwarn if "CC-BY-NC" in str(w.message)]
    assert len(notices) == 1 and "non-commercial" in str(notices[0].message)


def test_pre_1_2_compressai_names_are_mapped(nc_model, nc_file: Path, tmp_path: Path) -> None:
    """Files written with CompressAI before 1.2 name the bottleneck's parameters _matrix0, _bias0, _factor0."""
    old = {k.replace("matrices.", "_matrix").replace("biases.", "_bias").replace("factors.", "_factor"): v
           for k, v in nc_model.state_dict().items()}
    assert "hyper_bottleneck._matrix0" in old
    path = tmp_path / "old.ckpt"
    torch.save(old, path)
    assert hific.load(path).fingerprint == hific.load(nc_file).fingerprint


# --- The PyTorch port (../shared/third_party/jt-hific; the shims of its SOURCE.txt) -------------------------------


@pytest.fixture(scope="module")
def port():
    """The port's modules with the shims its SOURCE.txt lists: skimage's removed compare_ssim aliased, and
    torchvision's AlexNet (which its LPIPS loss would download) random."""
    if not JT_HIFIC.is_dir():
        pytest.skip(f"{JT_HIFIC} is missing")
    pytest.importorskip("autograd")
    import skimage.measure
    import skimage.metrics
    import torchvision.models

    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(JT_HIFIC))
        mp.setattr(skimage.measure, "compare_ssim", skimage.metrics.structural_similarity, raising=False)
        mp.setattr(torchvision.models, "alexnet", lambda pretrained=False, **kw: torchvision.models.AlexNet())
        import default_config
        from src.helpers import utils
        from src.model import Model
        yield types.SimpleNamespace(config=default_config, utils=utils, Model=Model, mp=mp)


def port_args(port, **overrides) -> dict:
    """The ``args`` dict the port's save_model writes (every public attribute of its hific_args), reduced widths."""
    cls = type("Args", (port.config.hific_args,), {"n_residual_blocks": 2, "latent_channels": 32, **overrides})
    return {n: getattr(cls, n) for n in dir(cls) if not n.startswith("_")}


def write_port_file(port, path: Path, args: dict, seed: int) -> Path:
    """A checkpoint as the port's train.py saves it: a HiFiC-GAN model in training mode, discriminator included."""
    torch.manual_seed(seed)
    model = port.Model(port.utils.Struct(**args), logging.getLogger("port"),
                       model_mode=port.config.ModelModes.TRAINING, model_type=port.config.ModelTypes.COMPRESSION_GAN)
    randomise_constants_(model, seed)
    spread_hyper_latent_(model.Hyperprior.analysis_net.conv3)
    torch.save({"model_state_dict": model.state_dict(), "args": args, "epoch": 0, "steps": 0}, path)
    return path


PORT_VARIANTS = {"low": {"normalize_input_image": True},   # HIFIC-low / high: -norm ([-1, 1] input, tanh output)
                 "med": {"likelihood_type": "logistic"}}  # HIFIC-med: logistic likelihood


@pytest.fixture(scope="module", params=sorted(PORT_VARIANTS))
def port_file(request, port, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """(a port checkpoint file, the port's own evaluation model loaded from it by its load_model)."""
    path = tmp_path_factory.mktemp("port") / f"hific_{request.param}.pt"
    write_port_file(port, path, port_args(port, **PORT_VARIANTS[request.param]), seed=2)
    _, model, _ = port.utils.load_model(str(path), logging.getLogger("port"), torch.device("cpu"),
                                        model_type=port.config.ModelTypes.COMPRESSION,
                                        model_mode=port.config.ModelModes.EVALUATION, silent=True)
    return path, model.eval()


@pytest.mark.parametrize("h,w", PORT_SIZES)
def test_port_is_reproduced(port_file, kodak: Path, h: int, w: int) -> None:
    """The port's evaluation forward (x padded to 16, y to 4, cropped) against ours: reconstructions within 1e-4,
    the same estimated bits of y (its gaussian or logistic likelihood) and z (its density, rounded without offset),
    and our .hfc round trip decoding to its reconstruction."""
    path, theirs_model = port_file
    codec = hific.load(path)
    config = codec.model.config
    rgb = kodak_crop(kodak, h, w)
    x = as_tensor(rgb)
    symmetric = theirs_model.args.normalize_input_image
    assert config.input_range == ("symmetric" if symmetric else "unit")
    assert config.latent_likelihood == theirs_model.args.likelihood_type
    with torch.no_grad():
        intermediates, info = theirs_model.compression_forward(x * 2 - 1 if symmetric else x)
        theirs = (intermediates.reconstruction + 1) / 2 if symmetric else intermediates.reconstruction
        padded = pad_image(x, *pad_amounts(h, w, 16))
        ours = codec.model(padded)["x_hat"][..., :h, :w]
        torch.testing.assert_close(ours, theirs, atol=TOL, rtol=0)
        likelihoods = codec.model.likelihoods(padded)
    pixels = padded.shape[-2] * padded.shape[-1]  # its bpp is over the padded image
    assert bits(likelihoods["y"]) == pytest.approx(float(info.latent_qbpp) * pixels, rel=1e-3)  # it adds 1e-9 in log
    assert bits(likelihoods["z"]) == pytest.approx(float(info.hyperlatent_qbpp) * pixels, rel=1e-3)
    assert_hfc_decodes_to(codec, rgb, theirs)


def test_every_port_option_is_needed(port_file, kodak: Path) -> None:
    assert_every_option_is_needed(port_file[0], kodak)


@pytest.mark.parametrize("h,w", [(1, 1), (17, 5), (64, 64), (65, 130)])
def test_port_models_code_any_size(port_file, kodak: Path, h: int, w: int) -> None:
    """Sides of 64 or less, which the port cannot code, are padded to 80 (a z of 2 x 2 for its reflect padding)."""
    codec = hific.load(port_file[0])
    rgb = kodak_crop(kodak, h, w)
    decoded = codec.decompress(codec.compress(rgb))
    with torch.no_grad():   # the file carries exactly the latent G decodes in the forward pass
        x_hat = codec.model(pad_image(as_tensor(rgb), *pad_amounts(h, w, codec.pad_multiple, codec.min_side)))["x_hat"]
    assert decoded.shape == (h, w, 3)
    assert np.array_equal(decoded, x_hat[0, :, :h, :w].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy())


def test_port_loads_by_name_from_the_hub_cache(port_file, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               recwarn: pytest.WarningsRecorder) -> None:
    path, _ = port_file
    entry = published.REGISTRY[f"port-hific-{path.stem.split('_')[1]}"]
    folder = hub_cache(tmp_path, monkeypatch)
    (folder / entry.filename).symlink_to(path)
    codec = hific.load(entry.name)
    assert codec.name == entry.name and codec.fingerprint == hific.load(path).fingerprint
    assert codec.metadata["licence"] == "Apache-2.0"
    assert not [w for w in recwarn if "licensed" in str(w.message)]  # Apache-2.0: nothing to announce


@pytest.mark.parametrize("override,message", [
    ({"use_latent_mixture_model": True}, "use_latent_mixture_model=True is not supported"),
    ({"sample_noise": True}, "sample_noise=True is not supported"),
    ({"likelihood_type": "laplace"}, "likelihood_type='laplace' is not supported"),
])
def test_port_args_the_converter_does_not_support_are_refused(port, tmp_path: Path, override: dict,
                                                              message: str) -> None:
    state = {"Encoder.conv_block_out.1.weight": torch.zeros(32, 960, 3, 3)}
    path = tmp_path / "hific_x.pt"
    torch.save({"model_state_dict": state, "args": port_args(port, **override)}, path)
    with pytest.raises(ModelNotFoundError, match=message):
        hific.load(path)


# --- Names, the cache and the CLI -----------------------------------------------------------------------------------


def test_empty_cache_is_one_line_naming_url_and_path(kodak: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture) -> None:
    folder = hub_cache(tmp_path, monkeypatch)
    image = tmp_path / "in.png"
    from PIL import Image

    Image.fromarray(kodak_crop(kodak, 64, 64)).save(image)
    for name in ("msillm-q3", "port-hific-med"):
        entry = published.REGISTRY[name]
        code = main(["compress", str(image), str(tmp_path / "out.hfc"), "--model", name])
        _, err = capsys.readouterr()
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
        assert err.startswith(f"hific: error: {name}: not in the torch hub cache")
        assert entry.url in err and str(folder / entry.filename) in err
    assert not (tmp_path / "out.hfc").exists()


def test_a_foreign_file_of_no_known_format_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(ModelNotFoundError, match="not a hific checkpoint, nor a NeuralCompression or PyTorch-port"):
        hific.load(path)


def test_models_all_lists_shipped_published_and_compressai(nc_file: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture) -> None:
    folder = hub_cache(tmp_path, monkeypatch)
    (folder / nc_file.name).symlink_to(nc_file)
    assert main(["models", "--all"]) == 0
    rows = {line.split("\t")[0]: line.split("\t") for line in capsys.readouterr().out.splitlines()}
    assert set(zoo.shipped()) | set(published.REGISTRY) | {f"ms-q{q}" for q in range(1, 9)} == set(rows)
    assert {"msillm-q1", "msillm-q6", "msillm-vlo1", "msillm-vlo2", "noganms-q1", "noganms-q6",
            "port-hific-low", "port-hific-med", "port-hific-high"} <= set(rows)
    name, status, source, licence, where = rows["msillm-q3"]
    assert status == "cached" and "MS-ILLM" in source and "0.14 bpp" in source
    assert "CC-BY-NC 4.0" in licence and where == str(folder / nc_file.name)
    assert rows["noganms-q2"][1] == "not cached" and rows["noganms-q2"][4] == published.REGISTRY["noganms-q2"].url
    assert rows["port-hific-high"][3] == "licence: Apache-2.0" and rows["ms-q8"][1] == "not cached"
    assert main(["models"]) == 0
    listed = {line.split("\t")[0] for line in capsys.readouterr().out.splitlines()}
    assert listed == set(zoo.shipped()) | {"msillm-q3"}


def test_registry_urls_follow_the_publishers() -> None:
    """File names as neuralcompression/zoo and the port's Zenodo record give them."""
    names = {e.name: e.filename for e in published.REGISTRY.values()}
    assert names["msillm-q1"] == "msillm_target_0.035bpp.ckpt" and names["msillm-q6"] == "msillm_target_0.9bpp.ckpt"
    assert names["msillm-vlo1"] == "msillm_target_0.00218bpp.ckpt"
    assert names["noganms-q4"] == "noganms_target_0.3bpp.ckpt"
    assert [names[f"port-hific-{t}"] for t in ("low", "med", "high")] == ["hific_low.pt", "hific_med.pt", "hific_hi.pt"]
    assert all(e.url.startswith("https://dl.fbaipublicfiles.com/NeuralCompression/2023-muckley-msillm/")
               for e in published.REGISTRY.values() if e.family is published.NEURALCOMPRESSION)


@pytest.mark.filterwarnings("ignore:for lin")  # the port's LPIPS layers load into meta tensors as a no-op
def test_full_size_files_fit_parameter_for_parameter(nc_autoencoder, port) -> None:
    """The published files' architectures (HiFiC's widths, 220 latent and 320 hyperprior channels, 9 residual
    blocks) map onto ours, every parameter with its shape. Meta tensors and stride-0 zeros: nothing is allocated."""
    args = port_args(port, n_residual_blocks=9, latent_channels=220)
    with torch.device("meta"):
        nc_state = nc_autoencoder().state_dict()
        port_state = port.Model(port.utils.Struct(**args), logging.getLogger("port"),
                                model_mode=port.config.ModelModes.TRAINING,
                                model_type=port.config.ModelTypes.COMPRESSION_GAN).state_dict()

    def zeros(state: dict) -> dict:
        return {k: torch.zeros(()).expand(v.shape) for k, v in state.items()}

    for blob in (zeros(nc_state), {"model_state_dict": zeros(port_state), "args": args}):
        config, state, _ = published.convert(blob, "full size")
        assert (config.latent_channels, config.hyperprior_filters, config.residual_blocks) == (220, 320, 9)
        with torch.device("meta"):
            ours = HiFiC(config)
        params = {k: v.shape for k, v in zoo.learned_state(ours).items()}
        assert {k: v.shape for k, v in state.items() if k in params} == params
        assert set(state) <= set(params) | {k for k, _ in ours.named_buffers()}


def test_unknown_architecture_options_are_one_line() -> None:
    with pytest.raises(ModelNotFoundError, match="model configuration 'x': padding must be one of image, two-stage"):
        ModelConfig("x", padding="three-stage")


def test_an_unreadable_cached_file_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = hub_cache(tmp_path, monkeypatch)
    (folder / published.REGISTRY["noganms-q1"].filename).write_bytes(b"not a checkpoint")
    with pytest.raises(ModelNotFoundError, match=r"noganms_target_0.035bpp.ckpt: not a readable checkpoint"):
        hific.load("noganms-q1")
