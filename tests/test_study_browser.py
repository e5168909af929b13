"""A real browser (Debian's headless Chromium via Playwright) rates several trials of a study
served by `streamlit run` on localhost, flipping between A and B in the page itself; the
database then holds exactly those answers."""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from study_app import raters, reports, studies, trials
from study_app.flipper import data_uri

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from study_server import serve  # noqa: E402  (benchmarks/study_server.py, shared with benchmarks/study_flip.py)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def settle(page) -> None:
    """Wait until the app has finished its rerun, so clicks and shortcuts reach the
    widgets of the trial on screen."""
    from playwright.sync_api import expect

    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=30_000)
    page.wait_for_timeout(700)


@pytest.fixture()
def served_study(study_bench_dir: Path, tmp_path: Path):
    """A study under tmp_path, served by a `streamlit run` subprocess on a free port."""
    config = studies.StudyConfig(benchmark_dir=str(study_bench_dir), methods=["jpeg:q5", "jpeg:q20", "jpeg:q60"],
                                 images=["kodim01", "kodim05"], crop_size=96, n_positions=2,
                                 comparisons_per_rater=6, attention_every=0)
    h = studies.create_study(tmp_path, "web", config)
    env = {k: v for k, v in os.environ.items() if k != "HIFIC_STUDY_ADMIN_PASSWORD"}
    with serve(tmp_path, env) as url:
        yield h, url


def check_flips_stay_in_the_browser(page, paths: dict[str, Path], sent: list) -> None:
    """Flip with the button, F and Space (also while an answer button has the focus): the
    slot swaps between A's and B's crops in the same place, and the page sends the server
    nothing (no websocket frame in ``sent``, so no Streamlit run) and answers nothing."""
    from playwright.sync_api import expect

    assert sent, "the page's websocket frames are not being counted"
    before = len(sent)
    current, caption = page.locator("img.side.current"), page.locator("figcaption.showing")
    expect(page.locator("img.reference")).to_have_attribute("src", data_uri(paths["reference"]))
    uris = {side: data_uri(paths[side]) for side in "AB"}
    assert uris["A"] != uris["B"]
    box = current.bounding_box()
    for side, flip in [("B", lambda: page.get_by_role("button", name="Flip to B").click()),
                       ("A", lambda: page.keyboard.press("f")),
                       ("B", lambda: page.keyboard.press("Space")),
                       ("A", lambda: (page.get_by_role("button", name=re.compile("^A is closer")).focus(),
                                      page.keyboard.press("Space")))]:
        flip()
        expect(current).to_have_attribute("src", uris[side], timeout=2_000)
        expect(caption).to_have_text(f"Showing {side}")
        assert current.bounding_box() == box  # the same place
    page.wait_for_timeout(500)
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0)
    assert len(sent) == before and page.evaluate("document.activeElement.tagName") == "BUTTON"


def test_browser_rates_trials_and_db_holds_exactly_them(served_study) -> None:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium (make browser installs it)")
    from playwright.sync_api import expect, sync_playwright

    h, url = served_study
    rater = raters.add_rater(h, "browser")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page()
        sent: list[str | bytes] = []  # every websocket frame the page sends to the server
        page.on("websocket", lambda ws: ws.on("framesent", lambda frame: sent.append(frame)))
        page.goto(f"{url}?study=web&token={rater.token}")
        progress = page.get_by_text(re.compile(r"\d+ of 6 answered"))
        expect(progress).to_have_text("0 of 6 answered", timeout=60_000)
        expect(page.get_by_text("Showing A")).to_be_visible()
        settle(page)
        check_flips_stay_in_the_browser(page, trials.trial_item_paths(h, trials.current_trial(h, rater)), sent)
        assert "jpeg" not in page.content()  # blind: no method names on the page
        pressed = []
        for i, (how, choice) in enumerate([("click", "A"), ("click", "undecided"), ("key", "B"), ("dblclick", "B")]):
            settle(page)
            if how == "key":
                page.mouse.click(5, 300)  # focus the page, not a button, as a rater's click would
                page.keyboard.press("b")  # the "B is closer" shortcut
            else:
                label = {"A": "A is closer", "B": "B is closer", "undecided": "Can't decide"}[choice]
                button = page.get_by_role("button", name=re.compile(f"^{label}"))
                if how == "dblclick":
                    button.dblclick()  # must answer this one trial only
                else:
                    button.click()
            pressed.append(choice)
            expect(progress).to_have_text(f"{i + 1} of 6 answered", timeout=30_000)
        page.reload()  # a refresh neither loses nor repeats an answer
        expect(page.get_by_text(re.compile(r"\d+ of 6 answered"))).to_have_text("4 of 6 answered", timeout=60_000)
        browser.close()
    df = reports.judgements(h)
    assert list(df["choice"]) == pressed
    assert df["rater"].eq("browser").all() and df["duration_s"].gt(0).all()
    assert trials.current_trial(h, rater).seq == 4
