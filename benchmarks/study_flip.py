"""How fast the study app's A/B flip is in a real browser (headless Chromium), next to one
Streamlit round-trip (an answer: server rerun, database write, the next trial's crops).

    python benchmarks/study_flip.py BENCH_DIR [--methods M1,M2] [--crop 768] [--flips 60] [--answers 6]

BENCH_DIR is an output directory of benchmarks/run.py.  A throw-away study (two methods,
``--crop`` crops) is served on localhost; the page flips by the ``F`` key ``--flips`` times,
and answers ``--answers`` trials.  Times are taken in the page (``performance.now``):
"swap" until the key handler has swapped the image, "frame" until the next animation
frame has been produced with it; "answer" from the click until the next trial's flipper is
on screen with its crops decoded.  Prints one table; writes nothing else.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from study_app import crops, raters, studies, trials
from study_server import serve

CHROMIUM = "/usr/bin/chromium"

FLIP_JS = """async (n) => {
  const swap = [], frame = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    window.dispatchEvent(new KeyboardEvent("keydown", { key: "f", bubbles: true }));
    swap.push(performance.now() - t0);
    await new Promise((done) => requestAnimationFrame(() => setTimeout(done, 0)));
    frame.push(performance.now() - t0);
  }
  return { swap, frame };
}"""

ANSWER_JS = """async () => {
  const flipper = () => [...document.querySelectorAll("*")].find(
    (el) => el.shadowRoot && el.shadowRoot.querySelector("img.reference"));
  const ready = (host) => host && [...host.shadowRoot.querySelectorAll("img")].every((i) => i.complete && i.naturalWidth);
  const before = flipper();
  const button = [...document.querySelectorAll("button")].find((b) => b.innerText.startsWith("A is closer"));
  const t0 = performance.now();
  button.click();
  while (flipper() === before || !ready(flipper())) {
    if (performance.now() - t0 > 60000) throw new Error("the next trial did not appear within 60 s");
    await new Promise((done) => requestAnimationFrame(() => setTimeout(done, 0)));
  }
  return performance.now() - t0;
}"""


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bench_dir", type=Path)
    p.add_argument("--methods", help="two methods codec:setting (default: the first two)")
    p.add_argument("--crop", type=int, default=768)
    p.add_argument("--flips", type=int, default=60)
    p.add_argument("--answers", type=int, default=6)
    return p.parse_args(argv)


def make_study(root: Path, args: argparse.Namespace) -> tuple[studies.StudyHandle, str]:
    """A one-image study with two methods; returns it and a rater token."""
    methods = args.methods.split(",") if args.methods else crops.benchmark_methods(args.bench_dir)[:2]
    images = crops.benchmark_images(args.bench_dir)[:1]
    config = studies.StudyConfig(benchmark_dir=str(args.bench_dir.resolve()), methods=methods, images=images,
                                 crop_size=args.crop, n_positions=1, comparisons_per_rater=args.answers + 1,
                                 attention_every=0)
    h = studies.create_study(root, "flipbench", config)
    return h, raters.add_rater(h, "bench").token


def measure(url: str, token: str, args: argparse.Namespace) -> pd.DataFrame:
    """Flip and answer in headless Chromium; one row per timing kind."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1800, "height": 1000})
        page.goto(f"{url}?study=flipbench&token={token}")
        expect(page.get_by_text("Showing A")).to_be_visible(timeout=60_000)
        flips = page.evaluate(FLIP_JS, args.flips)
        expect(page.get_by_text("Showing A" if args.flips % 2 == 0 else "Showing B")).to_be_visible()
        answers = []
        for _ in tqdm(range(args.answers), desc="answers", unit="trial"):
            page.wait_for_timeout(500)  # let the previous run finish, as a rater would
            answers.append(page.evaluate(ANSWER_JS))
        browser.close()
    rows = [("flip: swap", flips["swap"]), ("flip: next frame", flips["frame"]), ("answer: round-trip", answers)]
    return pd.DataFrame([{"what": name, "n": len(v), "median_ms": np.median(v), "p90_ms": np.percentile(v, 90),
                          "max_ms": np.max(v)} for name, v in rows])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not Path(CHROMIUM).exists():
        print(f"error: {CHROMIUM} is missing (make browser installs Debian's chromium)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        try:
            h, token = make_study(Path(tmp), args)
        except (studies.StudyError, crops.BenchmarkDirError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        trial = trials.current_trial(h, raters.rater_by_token(h, token))
        width, height = crops.load_rgb(trials.trial_item_paths(h, trial)["A"]).size
        with serve(Path(tmp)) as url:
            table = measure(url, token, args)
    print(f"crops {width}x{height}, methods {', '.join(h.config.methods)}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
