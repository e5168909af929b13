"""``python -m analysis.report RESULTS_DIR [--study DB_OR_EXPORT] [--scale bt|jod|elo] --out report.html``

Executes the analysis notebooks headless (nbclient) with their inputs injected after each
notebook's ``parameters`` cell (papermill's convention: a cell tagged ``injected-parameters``),
and renders them into ONE self-contained HTML file (nbconvert; plotly.js embedded once, code
cells hidden), written atomically.  A failing cell stops the report with a one-line message.
"""
from __future__ import annotations

import argparse
import ast
import re
import sys
import tempfile
from pathlib import Path

import nbformat
import plotly.io as pio
from jupyter_client.kernelspec import NoSuchKernel
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from nbconvert import HTMLExporter
from plotly.offline import get_plotlyjs
from tqdm import tqdm
from traitlets.config import Config

from hific.image_io import atomic_write_bytes
from study_app.score import SCALES

ANALYSIS_DIR = Path(__file__).resolve().parent
REPO = ANALYSIS_DIR.parent
NOTEBOOKS = ["rate_perception", "bitrate_factors", "distortion_perception", "user_study"]
PLOTLY_MIME = "application/vnd.plotly.v1+json"
KERNEL = "python3"
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # colours in IPython's tracebacks
TEMPLATES = ANALYSIS_DIR / "templates"  # report/: nbconvert's lab page without network scripts


class ReportError(RuntimeError):
    """A notebook could not be run or the report could not be written, as one line."""


def parameter_names(nb: nbformat.NotebookNode) -> tuple[int, set[str]]:
    """Index of the cell tagged ``parameters`` and the names it assigns."""
    for i, cell in enumerate(nb.cells):
        if "parameters" in cell.metadata.get("tags", []):
            tree = ast.parse(cell.source)
            return i, {t.id for node in tree.body if isinstance(node, ast.Assign)
                       for t in node.targets if isinstance(t, ast.Name)}
    raise ReportError("a notebook has no cell tagged 'parameters'")


def inject_parameters(nb: nbformat.NotebookNode, params: dict[str, object]) -> nbformat.NotebookNode:
    """Insert, after the ``parameters`` cell, a cell that sets those of ``params`` the
    notebook declares."""
    index, names = parameter_names(nb)
    source = "\n".join(f"{k} = {v!r}" for k, v in params.items() if k in names)
    cell = nbformat.v4.new_code_cell("# Parameters injected by analysis.report\n" + source)
    cell.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(index + 1, cell)
    return nb


def execute(path: Path, params: dict[str, object], timeout: int) -> nbformat.NotebookNode:
    """Run one notebook top to bottom in a fresh kernel, in the repository root; the kernel
    talks over local sockets (IPC) in a private temporary folder, not over TCP."""
    nb = inject_parameters(nbformat.read(path, as_version=4), params)
    try:
        with tempfile.TemporaryDirectory(prefix="analysis-kernel-") as sockets:
            ipc = Config({"KernelManager": {"transport": "ipc", "ip": str(Path(sockets) / "kernel")}})
            NotebookClient(nb, kernel_name=KERNEL, timeout=timeout, config=ipc,
                           resources={"metadata": {"path": str(REPO)}}).execute()
    except CellExecutionError as exc:
        text = ANSI.sub("", str(exc)).strip()
        last = text.splitlines()[-1] if text else type(exc).__name__
        raise ReportError(f"{path.name}: a cell failed: {last}") from None
    except NoSuchKernel:
        raise ReportError(f"no Jupyter kernel {KERNEL!r}: install ipykernel in this environment") from None
    except (CellTimeoutError, DeadKernelError) as exc:
        raise ReportError(f"{path.name}: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    return nb


def plotly_outputs_to_html(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Replace each plotly figure output by an HTML block that uses the page's one plotly.js."""
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if PLOTLY_MIME in data:
                fig = pio.from_json(data[PLOTLY_MIME] if isinstance(data[PLOTLY_MIME], str)
                                    else pio.to_json(data[PLOTLY_MIME]), skip_invalid=True)
                output["data"] = {"text/html": pio.to_html(fig, include_plotlyjs=False, full_html=False)}
    return nb


def combine(notebooks: dict[str, nbformat.NotebookNode], title: str) -> nbformat.NotebookNode:
    """One notebook holding all cells but the parameters of ``notebooks`` (by name) under a
    title cell; cell ids get the notebook's name so that they stay unique."""
    out = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"# {title}")])
    for name, nb in notebooks.items():
        out.metadata = nb.metadata
        for cell in nb.cells:
            if not {"parameters", "injected-parameters"} & set(cell.metadata.get("tags", [])):
                cell.id = f"{name}-{cell.id}"
                out.cells.append(cell)
    return out


def render_html(nb: nbformat.NotebookNode) -> str:
    """Self-contained HTML of an executed notebook, code cells hidden, plotly.js inline."""
    exporter = HTMLExporter(template_name="report", extra_template_basedirs=[str(TEMPLATES)],
                            exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True, embed_images=True)
    body, _ = exporter.from_notebook_node(nb, resources={"plotly_js": get_plotlyjs()})
    return body


def build_report(params: dict[str, object], out: Path, timeout: int = 600) -> Path:
    """Execute every notebook with ``params`` and write the combined HTML report to ``out``."""
    executed = {name: plotly_outputs_to_html(execute(ANALYSIS_DIR / f"{name}.ipynb", params, timeout))
                for name in tqdm(NOTEBOOKS, desc="notebooks", unit="nb")}
    title = f"HiFiC analysis of {params.get('results_dir')}"
    atomic_write_bytes(out, render_html(combine(executed, title)).encode("utf-8"))
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m analysis.report", 
                                     description="Render the analysis notebooks into one HTML report.")
    parser.add_argument("results_dir", type=Path, help="benchmark output directory (benchmarks/run.py --out)")
    parser.add_argument("--study", type=Path, help="study database/directory or the study app's CSV export")
    parser.add_argument("--out", type=Path, required=True, help="the HTML report to write")
    parser.add_argument("--dataset", default="auto", help="kodak, div2k, clic2020 or auto (default)")
    parser.add_argument("--published-judgements", type=Path,
                        help="HiFiC's userstudy.json (default: ../shared/data/hific_userstudy/userstudy.json)")
    parser.add_argument("--reference", default="hific", help="codec whose bitrate factors are computed")
    parser.add_argument("--anchor", default="auto",
                        help="codec the BD-rates are against (auto, default: bpg, else bpg-x265; none: no BD-rate)")
    parser.add_argument("--baselines", default="bpg,bpg-x265,ms", help="comma-separated baseline codecs")
    parser.add_argument("--variants", default="hific,nogan",
                        help="comma-separated codecs whose settings are trained variants (Fig. 5)")
    parser.add_argument("--static-dir", type=Path, help="also write every figure as PNG and SVG here")
    parser.add_argument("--orderings", type=int, default=100, help="random Elo orderings (default 100)")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples (default 200)")
    parser.add_argument("--scale", default="bt",
                        help=f"human score scale: {', '.join(SCALES)} (default bt; jod: Thurstone Case V JOD)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds allowed per cell (default 600)")
    return parser.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    """Refuse inputs that cannot work, with one line each."""
    if not args.results_dir.is_dir():
        raise ReportError(f"{args.results_dir}: no such results directory")
    for path in (args.study, args.published_judgements):
        if path is not None and not path.exists():
            raise ReportError(f"{path}: no such file or directory")
    if not args.out.parent.is_dir():
        raise ReportError(f"{args.out.parent}: the output folder does not exist")
    if args.out.is_dir():
        raise ReportError(f"{args.out}: is a directory, expected an HTML file name")
    if min(args.orderings, args.bootstrap, args.timeout) < 1:
        raise ReportError("--orderings, --bootstrap and --timeout must be at least 1")
    if args.scale not in SCALES:
        raise ReportError(f"unknown --scale {args.scale!r}: use one of {', '.join(SCALES)}")


def absolute(path: Path | None) -> str | None:
    """An absolute path string (notebooks run in the repository root), or ``None``."""
    return str(path.resolve()) if path is not None else None


def names(text: str) -> list[str]:
    """The names of a comma-separated list."""
    return [x.strip() for x in text.split(",") if x.strip()]


def to_params(args: argparse.Namespace) -> dict[str, object]:
    """The notebooks' parameters from the command line (paths made absolute)."""
    return {"results_dir": absolute(args.results_dir), "study": absolute(args.study),
            "dataset": args.dataset, "published_judgements": absolute(args.published_judgements),
            "reference": args.reference, "anchor": args.anchor, "baselines": names(args.baselines),
            "codecs": names(args.variants),
            "static_dir": absolute(args.static_dir), "n_orderings": args.orderings,
            "n_bootstrap": args.bootstrap, "scale": args.scale}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        check_args(args)
        out = build_report(to_params(args), args.out.resolve(), args.timeout)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
