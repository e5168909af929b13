"""All configuration of the toolkit in one place.

Model configurations follow the HiFiC paper (Mentzer et al. 2020, Sec. 3 and Fig. 2/ Appendix A.1) and
its official code (tensorflow/compression, models/hific/archs.py):

* ``paper``: the published architecture (E: 60-120-240-480-960, 220 latent channels, G: 960 wide with
  9 residual blocks, hyperprior with 320 filters, D: 64-128-256-512).
* ``small``: the same topology, five times narrower, for CPU work and the shipped checkpoints
  (checkpoint <= 25 MB in half precision, about a second per Kodak image on 2 CPU cores).
* ``small-wide``, ``small-zeros`` and ``small-wide-zeros``: ``small`` with wider high-resolution layers in G and 5
  residual blocks, with the official zero padding, or both: variants compared from scratch at equal CPU time
  (README "Training").
* ``neuralcompression`` and ``port``: the ``paper`` widths with the architecture variants of the two published
  re-implementations whose weights :mod:`hific.published` converts (NeuralCompression's MS-ILLM / No-GAN models,
  the PyTorch port's HIFIC-low/med/high). Every variant is an option of :class:`ModelConfig` whose default is
  this toolkit's own architecture, so the shipped checkpoints are unaffected.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from hific.errors import ModelNotFoundError


# The string options of ModelConfig and their values; the first is the default (this toolkit's architecture).
ARCH_OPTIONS: dict[str, tuple[str, ...]] = {
    "encoder_first_padding": ("reflect", "zeros"),
    "encoder_down_padding": ("zeros", "reflect-0110"),
    "encoder_last_padding": ("zeros", "reflect"),
    "generator_padding": ("reflect", "zeros"),
    "hyper_analysis_padding": ("zeros", "reflect"),
    "hyperlatent_offset": ("median", "zero"),
    "latent_likelihood": ("gaussian", "logistic"),
    "input_range": ("unit", "symmetric"),
    "padding": ("image", "two-stage"),
}


@dataclass(frozen=True)
class ModelConfig:
    """Widths of every network of HiFiC. See the module docstring for the two named configurations."""

    name: str
    encoder_channels: tuple[int, ...] = (60, 120, 240, 480, 960)
    latent_channels: int = 220
    generator_channels: int = 960
    residual_blocks: int = 9
    generator_up_channels: tuple[int, ...] = (480, 240, 120, 60)
    hyperprior_filters: int = 320
    discriminator_channels: tuple[int, ...] = (64, 128, 256, 512)
    discriminator_latent_channels: int = 12
    channel_norm_eps: float = 1e-3
    # Largest image (H x W, after padding) the codec accepts; beyond it a clear error names the limit.
    max_pixels: int = 16_000_000
    # Architecture variants of published re-implementations (choices in ARCH_OPTIONS; the first is the default).
    encoder_first_padding: str = "reflect"    # E's conv7x7; NeuralCompression: "zeros"
    # E's stride-2 convs: zero padding of 1, or the port's nn.ReflectionPad2d((0, 1, 1, 0)) and no other padding
    encoder_down_padding: str = "zeros"
    encoder_last_padding: str = "zeros"       # E's last conv3x3; port: "reflect"
    generator_padding: str = "reflect"        # G's conv3x3 and conv7x7; NeuralCompression: "zeros"
    hyper_analysis_padding: str = "zeros"     # h_a's two conv5x5 stride 2; port: "reflect"
    # Hidden widths of the factorized prior of z; the port's density is (3, 3, 3, 1) plus an identity layer
    hyperlatent_filters: tuple[int, ...] = (3, 3, 3, 3)
    hyperlatent_offset: str = "median"        # z coded as round(z - median) + median; port: "zero", round(z)
    latent_likelihood: str = "gaussian"       # of y given (mu, sigma); the port's HIFIC-med: "logistic"
    # "unit": E sees x in [0, 1] and G's output is the image; "symmetric": E sees 2x - 1 and the image is
    # (tanh(G) + 1) / 2 (the port's normalize_input_image)
    input_range: str = "unit"
    # "image": x reflect-padded to a multiple of 64; "two-stage": x to a multiple of 16, then y to a multiple of 4
    # (the port's evaluation)
    padding: str = "image"

    def __post_init__(self) -> None:
        for field, choices in ARCH_OPTIONS.items():
            if getattr(self, field) not in choices:
                raise ModelNotFoundError(f"model configuration {self.name!r}: {field} must be one of "
                                         f"{', '.join(choices)}, not {getattr(self, field)!r}")

    @property
    def image_multiple(self) -> int:
        """What the codec pads images to: PAD_MULTIPLE, or LATENT_STRIDE when the model pads y itself."""
        return LATENT_STRIDE if self.padding == "two-stage" else PAD_MULTIPLE

    @property
    def min_image_side(self) -> int:
        """Smallest padded image side: h_a's reflect padding (by 2) needs more than 2 rows and columns at its
        last conv, a z of at least 2 x 2, so sides above 64 (the port itself fails on smaller images)."""
        return PAD_MULTIPLE + self.image_multiple if self.hyper_analysis_padding == "reflect" else 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        fields = {f.name for f in dataclasses.fields(cls)}
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in fields}
        return cls(**kw)


MODEL_CONFIGS: dict[str, ModelConfig] = {
    "paper": ModelConfig(name="paper", max_pixels=8_000_000),
    "small": ModelConfig(
        name="small",
        encoder_channels=(12, 24, 48, 96, 192),
        generator_channels=192,
        generator_up_channels=(96, 48, 24, 12),
        hyperprior_filters=128,
        discriminator_channels=(32, 64, 128, 256),
        max_pixels=40_000_000,
    ),
}
# Variants of ``small`` for the short-budget comparisons (README "Training"): G's high-resolution layers twice as
# wide (24-192 instead of 12-96 channels) with 5 instead of 9 residual blocks (the PyTorch port notes that quality
# saturates at 5): 5.3 instead of 5.6 GFLOP for E, P and G on a 256x256 crop; and the official code's zero padding
# in every convolution (E's conv7x7 and G reflect-pad here); and both together.
MODEL_CONFIGS["small-wide"] = dataclasses.replace(
    MODEL_CONFIGS["small"], name="small-wide", residual_blocks=5, generator_up_channels=(192, 96, 48, 24))
MODEL_CONFIGS["small-zeros"] = dataclasses.replace(
    MODEL_CONFIGS["small"], name="small-zeros", encoder_first_padding="zeros", generator_padding="zeros")
MODEL_CONFIGS["small-wide-zeros"] = dataclasses.replace(
    MODEL_CONFIGS["small-wide"], name="small-wide-zeros", encoder_first_padding="zeros", generator_padding="zeros")
# NeuralCompression's HiFiCAutoencoder (neuralcompression/models/_hific_encoder_decoder.py): zero padding everywhere.
MODEL_CONFIGS["neuralcompression"] = dataclasses.replace(
    MODEL_CONFIGS["paper"], name="neuralcompression", encoder_first_padding="zeros", generator_padding="zeros")
# The PyTorch port (Justin-Tan/high-fidelity-generative-compression, src/network/*, src/hyperprior.py, src/model.py);
# its likelihood and input range are per checkpoint (its args).
MODEL_CONFIGS["port"] = dataclasses.replace(
    MODEL_CONFIGS["paper"], name="port", encoder_down_padding="reflect-0110", encoder_last_padding="reflect",
    hyper_analysis_padding="reflect", hyperlatent_filters=(3, 3, 3, 1), hyperlatent_offset="zero", padding="two-stage")

# The model `hific compress` uses when none is named (the shipped low-rate HiFiC).
DEFAULT_MODEL = "hific-lo"

# Downsampling factor of the encoder (four stride-2 convolutions) and of encoder + hyper-analysis
# (two more stride-2 convolutions): images are reflect-padded to a multiple of PAD_MULTIPLE.
LATENT_STRIDE = 16
PAD_MULTIPLE = 64

# Gaussian conditional scale table (Minnen et al. 2018; HiFiC's official code): 64 levels, log-spaced.
SCALES_MIN, SCALES_MAX, SCALES_LEVELS = 0.11, 256.0, 64


def scale_table() -> list[float]:
    """The scale table exp(linspace(log 0.11, log 256, 64)) of the Gaussian conditional."""
    return np.exp(np.linspace(np.log(SCALES_MIN), np.log(SCALES_MAX), SCALES_LEVELS)).tolist()


def _named(table: dict, name: str, what: str):
    """``table[name]``, or one clear error listing the names of ``what`` there are."""
    try:
        return table[name]
    except KeyError:
        raise ModelNotFoundError(f"unknown {what} {name!r}; choose one of {', '.join(table)}") from None


def model_config(name: str) -> ModelConfig:
    """The named model configuration (``paper``, ``small`` or one of their variants in :data:`MODEL_CONFIGS`)."""
    return _named(MODEL_CONFIGS, name, "model configuration")


# --- Training presets (paper Sec. 3 and its official code, models/hific/configs.py) -----------------------

# CompressAI's rate-distortion lambdas of its published M&S qualities 1..8 (loss = lambda * 255^2 * MSE + bpp).
MS_LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800)
# M&S widths (N, M) per model size: CompressAI's qualities 1-4 and 5-8 (Minnen et al. 2018).
MS_WIDTHS = {"small": (128, 192), "paper": (192, 320)}
# The networks of the plain-named HiFiC and no-GAN presets (``nogan-lo``, ``hific-lo``...) in a run from scratch:
# the ``small`` variant that learned fastest at equal CPU time (README "Model variants from scratch": Kodak LPIPS
# 0.515 after 83 min of stage 1 against 0.543 for ``small``, 0.532 ``small-wide``, 0.536 ``small-zeros``). A run from
# --init or --warm-start trains its starting point's networks, so the shipped ``small`` checkpoints stay ``small``.
SMALL_PRESET_MODEL = "small-wide-zeros"
# HiFiC's rate targets r_t (bpp) and the rate weight lambda_a above the target (paper Sec. 3, Table 2).
RATE_TARGETS = {"lo": (0.14, 2.0), "mi": (0.30, 1.0), "hi": (0.45, 0.5)}


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs besides its data. Lengths and boundaries are for ``steps`` steps;
    :meth:`scaled` shortens a run and moves the boundaries with it (paper length: 1M steps per stage).

    kind "hific": L_EGP = lambda' r(y) + k_M MSE_255(x, x') + k_P LPIPS(x, x') - beta log D(x', y)
    (paper Eq. 4 with the official constants); stage 1 has no D (beta unused), stage 2 adds it.
    kind "ms": CompressAI's rate-distortion loss lambda_ms * 255^2 * MSE + bpp for the M&S baseline.
    """

    name: str
    model: str = "small"                 # ModelConfig name; for kind "ms" it picks the M&S widths
    kind: str = "hific"                  # "hific" or "ms"
    gan: bool = True                     # stage 2 (with D and the GAN term) or stage 1 ("no GAN")
    init_from: str | None = None         # stage 2 starts from this stage-1 config's run
    target_bpp: float = 0.14             # r_t
    lambda_a: float = 2.0                # rate weight while the bpp estimate is above r_t
    # Rate weight below r_t: 2^-6 is the official code's effective value (we use it); the PyTorch port uses 2^-4.
    lambda_b: float = 2.0 ** -6
    k_m: float = 0.075 * 2.0 ** -5       # MSE on the 0-255 scale
    k_p: float = 1.0                     # LPIPS (AlexNet v0.1)
    beta: float = 0.15                   # GAN term
    ms_lambda: float = 0.0067            # kind "ms" only
    steps: int = 1_000_000
    batch_size: int = 8
    crop: int = 256
    lr: float = 1e-4
    # The entropy bottleneck's auxiliary (quantile) loss has its own Adam; None: the main lr (official HiFiC).
    aux_lr: float | None = None
    optimizer: str = "adam"              # "adam" (official HiFiC) or "adamw" (MS-ILLM's stage 1)
    betas: tuple[float, float] = (0.9, 0.999)  # Adam betas of E, G, P
    weight_decay: float = 0.0            # AdamW only
    d_lr: float | None = None            # D's learning rate (None: the main lr, official)
    d_betas: tuple[float, float] = (0.9, 0.999)
    lr_schedule: str = "step"            # "step": x lr_decay after lr_decay_step (official); "cosine" to 0
    lr_warmup: int = 0                   # linear learning-rate warm-up steps (cosine schedule)
    lr_decay_step: int = 500_000         # learning rate x lr_decay after this step
    lr_decay: float = 0.1
    # Stage 2 only: "own" gives D its own batch of the same size (official code: batch_size x 2 images per
    # step, E/G run on D's half without gradients); "reuse" trains D on the G step's detached
    # reconstructions of the same batch. On 2 CPU cores "own" costs 13% more per step (benchmarks/train_speed.py)
    # and, at equal wall time, gave the better model (README "D's batch").
    disc_batch: str = "own"
    # Stage 2 only: train G alone, E and P frozen (MS-ILLM): the rate is fixed, G sees exactly the
    # decoder's input (means from the quantised z), and no gradient flows through E or P.
    freeze_analysis: bool = False
    # After --warm-start (fresh Adam on trained weights) the learning rate ramps up linearly over this many
    # steps: Adam's first updates move every weight by the full lr, which knocks a trained model out.
    warm_start_ramp: int = 200
    clip_grad_norm: float | None = None  # max gradient norm of E, G, P (and D); None: no clipping (official HiFiC)
    warmup_steps: int = 50_000           # rate weights x warmup_rate_factor, r_t x warmup_target_factor before
    warmup_rate_factor: float = 0.5
    warmup_target_factor: float = 0.20 / 0.14
    downscale: tuple[float, float] = (0.75, 0.95)
    log_every: int = 100
    val_every: int = 5_000              # validation and an image snapshot of reconstructions
    # Checkpoints: every ckpt_every steps (the official cadence, not scaled with the run) and at least every
    # ckpt_minutes of training, so that a short run does not spend its time writing checkpoints.
    ckpt_every: int = 1_000
    ckpt_minutes: float = 10.0
    max_bad_steps: int = 20              # consecutive non-finite losses before the run stops
    seed: int = 0

    @property
    def boundaries(self) -> tuple[str, ...]:
        """Fields that are step counts and scale with the run's length."""
        return ("lr_decay_step", "lr_warmup", "warmup_steps", "log_every", "val_every")

    def scaled(self, steps: int) -> "TrainConfig":
        """The same schedule for a run of ``steps`` steps: every boundary moves proportionally (at least 1)."""
        f = steps / self.steps
        kw = {k: max(int(getattr(self, k) > 0), round(getattr(self, k) * f)) for k in self.boundaries}
        return dataclasses.replace(self, steps=steps, **kw)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in fields})


def illm_name(name: str) -> str:
    """The MS-ILLM-recipe preset of an official one: ``hific-lo`` -> ``hific-lo-illm``,
    ``nogan-mi-paper`` -> ``nogan-mi-illm-paper``."""
    base, paper = (name[: -len("-paper")], "-paper") if name.endswith("-paper") else (name, "")
    return f"{base}-illm{paper}"


def _illm(cfg: TrainConfig) -> TrainConfig:
    """MS-ILLM's recipe (Muckley et al. 2023, NeuralCompression projects/illm) for HiFiC's networks and losses.

    Stage 1: AdamW lr 3e-4, weight decay 5e-5, a linear warm-up (10k of its steps) then cosine decay,
    gradient norm clipped at 1.0. Stage 2: G alone (E and P frozen), AdamW betas (0.5, 0.9) at lr 1e-4,
    D at lr 4e-4, with the official step schedule; HiFiC's D and beta are kept (MS-ILLM's 0.008 belongs
    to its U-Net discriminator).
    """
    common = {"name": illm_name(cfg.name), "optimizer": "adamw"}
    if not cfg.gan:
        return dataclasses.replace(cfg, **common, lr=3e-4, weight_decay=5e-5, lr_schedule="cosine", lr_warmup=10_000,
                                   clip_grad_norm=1.0)
    return dataclasses.replace(cfg, **common, init_from=illm_name(cfg.init_from), lr=1e-4, betas=(0.5, 0.9),
                               d_lr=4e-4, freeze_analysis=True)


def _train_configs() -> dict[str, TrainConfig]:
    """hific-{lo,mi,hi}, nogan-{lo,mi,hi}, ms-{lo,mi,hi} (official recipes), hific-/nogan-*-illm (MS-ILLM's
    recipe); plain names are the small size (HiFiC / no GAN: :data:`SMALL_PRESET_MODEL`; M&S: ``small``), a
    ``-paper`` suffix the paper's."""
    out: dict[str, TrainConfig] = {}
    for size, suffix in (("small", ""), ("paper", "-paper")):
        net = SMALL_PRESET_MODEL if size == "small" else size
        for tag, (target, lam_a) in RATE_TARGETS.items():
            nogan = f"nogan-{tag}{suffix}"
            stage1 = TrainConfig(nogan, model=net, gan=False, target_bpp=target, lambda_a=lam_a)
            stage2 = TrainConfig(f"hific-{tag}{suffix}", model=net, gan=True, init_from=nogan, target_bpp=target,
                                 lambda_a=lam_a)
            for cfg in (stage1, stage2, _illm(stage1), _illm(stage2)):
                out[cfg.name] = cfg
        for tag, lam in (("lo", MS_LAMBDAS[0]), ("mi", MS_LAMBDAS[1]), ("hi", MS_LAMBDAS[2])):
            # CompressAI's examples/train.py: gradient norm clipped at 1.0, aux loss at lr 1e-3
            out[f"ms-{tag}{suffix}"] = TrainConfig(f"ms-{tag}{suffix}", model=size, kind="ms", gan=False,
                                                   ms_lambda=lam, clip_grad_norm=1.0, aux_lr=1e-3)
    return out


TRAIN_CONFIGS: dict[str, TrainConfig] = _train_configs()


def train_config(name: str) -> TrainConfig:
    """The named training preset (see :data:`TRAIN_CONFIGS`)."""
    return _named(TRAIN_CONFIGS, name, "training configuration")
