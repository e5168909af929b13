"""What a benchmark run reports beside its summary, through the real command on Kodak crops: n_patches and the
unreliable-FID flag, BD-rates against the anchor, the published reference points; and the named datasets'
download path (real urllib, zip and hash checks, on a local file:// archive)."""
from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from hific.bench import datasets
from hific.bench.columns import BD_RATE_COLUMNS, SUMMARY_COLUMNS
from hific.bench.command import main
from hific.errors import InputError
from hific.image_io import read_image


@pytest.fixture(scope="module")
def crops(kodak, tmp_path_factory) -> Path:
    """Two 256x384 Kodak crops: one patch each (too small for the shifted grid)."""
    folder = tmp_path_factory.mktemp("crops")
    for name in ("kodim05", "kodim19"):
        Image.fromarray(read_image(kodak / f"{name}.png")[:256, :384]).save(folder / f"{name}.png")
    return folder


def test_small_run_flags_fid_and_reports_bd_rate(crops, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["--codecs", "jpeg,webp", "--settings", "jpeg=q20,q40,q60,q80", "--settings", "webp=q20,q40,q60,q80",
                 "--dataset", str(crops), "--metrics", "psnr,fid,kid", "--anchor", "jpeg", "--out", str(out),
                 "--workers", "1"])
    printed = capsys.readouterr().out
    assert code == 0
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert (summary["n_patches"] == 2).all() and summary["fid"].notna().all()
    assert not summary["fid_reliable"].any()  # 2 patches < 2048 feature dimensions
    fid = f"{summary['fid'].iloc[0]:.4g}"
    assert f"{fid}*" in printed and f" {fid} " not in printed  # never a bare FID on 2 patches
    assert "* unreliable: FID/KID on fewer 256x256 patches" in printed
    bd = pd.read_csv(out / "bd_rate.csv")
    assert list(bd.columns) == BD_RATE_COLUMNS and set(bd["codec"]) == {"webp"} and set(bd["anchor"]) == {"jpeg"}
    rows = bd.set_index("metric")
    assert rows.loc["psnr", "bd_rate"] < 0  # WebP needs less rate than JPEG for the same PSNR
    assert not rows.loc["fid", "reliable"] and rows.loc["psnr", "reliable"]
    assert "BD-rate in % against jpeg" in printed and "published reference points" not in printed


def test_kodak_run_lists_the_published_reference_points(shared_data, tmp_path, capsys):
    code = main(["--codecs", "jpeg", "--settings", "q30", "--dataset", "kodak", "--data-dir", str(shared_data),
                 "--metrics", "psnr", "--out", str(tmp_path / "out"), "--workers", "1"])
    printed = capsys.readouterr().out
    assert code == 0
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert summary["n_patches"].tolist() == [24 * 8] and summary["fid_reliable"].isna().all()  # no FID asked
    assert "published reference points (kodak" in printed
    assert "hific-mi  0.3511" in printed and "msillm" in printed and "noganms" in printed
    assert "note: no anchor codec" in printed


def archive(images: list[Path], path: Path) -> datasets.Download:
    """A zip of ``images`` inside a folder, as the official archives are, described by its size and sha256."""
    with zipfile.ZipFile(path, "w") as zf:
        for image in images:
            zf.write(image, f"set/{image.name}")
    data = path.read_bytes()
    return datasets.Download(path.as_uri(), len(data), hashlib.sha256(data).hexdigest())


def test_named_set_downloads_checks_and_refuses(kodak, tmp_path, monkeypatch):
    download = archive([kodak / "kodim01.png", kodak / "kodim02.png"], tmp_path / "set.zip")
    monkeypatch.setitem(datasets.NAMED_SETS, "div2k", datasets.NamedSet((download,), 2))
    images = datasets.load("div2k", str(tmp_path / "data"))
    assert [i.name for i in images] == ["kodim01", "kodim02"]
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["div2k"]  # staging renamed, archive gone
    assert images[0].rgb.tobytes() == read_image(kodak / "kodim01.png").tobytes()

    bad = datasets.Download(download.url, download.size, "0" * 64)
    monkeypatch.setitem(datasets.NAMED_SETS, "div2k", datasets.NamedSet((bad,), 2))
    with pytest.raises(InputError, match="refusing it"):
        datasets.load("div2k", str(tmp_path / "other"))
    missing = datasets.Download((tmp_path / "absent.zip").as_uri())
    monkeypatch.setitem(datasets.NAMED_SETS, "clic2020", datasets.NamedSet((missing,), 428))
    with pytest.raises(InputError, match=r"dataset 'clic2020' is not in .* and cannot be downloaded"):
        datasets.load("clic2020", str(tmp_path / "offline"))
    assert not (tmp_path / "offline" / "clic2020").exists()


def test_named_sets_are_the_papers_evaluation_sets():
    assert {name: s.n_images for name, s in datasets.NAMED_SETS.items()} == {"kodak": 24, "clic2020": 428,
                                                                            "div2k": 100}
    assert all(d.sha256 and d.size for name in ("clic2020", "div2k") for d in datasets.NAMED_SETS[name].downloads)
