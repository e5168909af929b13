"""Shared fixtures: the evaluation data in ../shared/data and a random-initialised small checkpoint."""
from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is missing (the evaluation data lives beside the repository)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def kodak(shared_data: Path) -> Path:
    return shared_data / "kodak"


@pytest.fixture(scope="session")
def random_small_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A `small` HiFiC with random weights (seed 0), saved as a real checkpoint."""
    from hific import zoo
    from hific.model import HiFiC

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "random-small.pt"
    zoo.save_checkpoint(HiFiC.from_config("small"), path, name="random-small")
    return path


@pytest.fixture(scope="session")
def study_bench_dir(kodak: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real benchmark output directory (layout of benchmarks/run.py) for the study
    app: three Kodak images cut to 192x128, encoded with Pillow's JPEG at q5/q20/q60."""
    import hashlib
    import io

    import numpy as np
    import pandas as pd
    from PIL import Image

    out = tmp_path_factory.mktemp("bench")
    per_image, images = [], []
    for stem in ("kodim01", "kodim05", "kodim23"):
        with Image.open(kodak / f"{stem}.png") as img:
            orig = img.convert("RGB").crop((200, 150, 392, 278))
        (out / "originals").mkdir(exist_ok=True)
        orig.save(out / "originals" / f"{stem}.png")
        ref = np.asarray(orig)
        images.append({"image": stem, "width": 192, "height": 128,
                       "sha256": hashlib.sha256(ref.tobytes()).hexdigest()})
        for q in (5, 20, 60):
            buf = io.BytesIO()
            orig.save(buf, format="JPEG", quality=q)
            rec = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
            folder = out / "recon" / "jpeg" / f"q{q}"
            folder.mkdir(parents=True, exist_ok=True)
            rec.save(folder / f"{stem}.png")
            mse = np.mean((ref.astype(float) - np.asarray(rec, dtype=float)) ** 2)
            per_image.append({"codec": "jpeg", "setting": f"q{q}", "image": stem, "width": 192,
                              "height": 128, "bytes": buf.tell(), "bpp": buf.tell() * 8 / (192 * 128),
                              "psnr": 10 * np.log10(255**2 / mse), "ms_ssim": np.nan, "lpips": np.nan,
                              "encode_s": np.nan, "decode_s": np.nan})
    df = pd.DataFrame(per_image)
    df.to_csv(out / "per_image.csv", index=False)
    summary = df.groupby(["codec", "setting"], as_index=False).agg(
        n_images=("image", "size"), bpp=("bpp", "mean"), psnr=("psnr", "mean"),
        ms_ssim=("ms_ssim", "mean"), lpips=("lpips", "mean"))
    summary[["fid", "kid", "n_patches"]] = np.nan
    summary.to_csv(out / "summary.csv", index=False)
    pd.DataFrame(images).to_csv(out / "images.csv", index=False)
    return out


@pytest.fixture()
def admin_page() -> Iterator[Callable[[], object]]:
    """A function that opens the study app's admin page in Streamlit's AppTest and logs in
    (password ``pw`` in its secrets).  AppTest leaves the app script as
    ``sys.modules["__main__"]``; pytest's is put back afterwards, so that later tests using
    multiprocessing's spawn start method do not re-run the app."""
    from streamlit.testing.v1 import AppTest

    main = sys.modules["__main__"]

    def logged_in() -> AppTest:
        at = AppTest.from_file(str(REPO / "study_app" / "app.py"), default_timeout=120)
        at.query_params["page"] = "admin"
        at.secrets["study_admin_password"] = "pw"
        at.run()
        at.text_input[0].input("pw")
        at.button[0].click().run()
        return at

    yield logged_in
    sys.modules["__main__"] = main
