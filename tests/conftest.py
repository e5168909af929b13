"""Shared fixtures: the evaluation data in ../shared/data and a random-initialised small checkpoint."""
from __future__ import annotations

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
