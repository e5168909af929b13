"""A time-budgeted training campaign for a borrowed GPU (see :mod:`hific.train.campaign`).

    python benchmarks/campaign.py run --out OUT --time-budget 480 --kodak DIR \\
        --run "hific-lo --warm-start hific-lo --steps 60000" --run "hific-hi --warm-start hific-hi --steps 60000" \\
        --common "--device cuda --batch-size 8 --crop 256 --data D1 D2 --val V --val-every 500"
    python benchmarks/campaign.py join OUT --into hific/checkpoints/new

``run`` trains every ``--run`` side by side (one ``hific train`` process each, all with ``--time-budget``),
exports them, measures them on ``--kodak`` (PSNR, MS-SSIM, LPIPS) and leaves in OUT only
``checkpoints.tar.NN`` (pieces of at most --piece-mib) and ``campaign.tar.gz`` (logs, validation curves,
Kodak results, manifest). ``join`` reassembles the pieces, checks their sha256 and unpacks the checkpoints.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hific.errors import HificError  # noqa: E402
from hific.train.campaign import CampaignRun, join, run_campaign  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="verb", required=True)
    r = sub.add_parser("run", help="train, export, measure and pack")
    r.add_argument("--out", type=Path, required=True, help="where the packed files go (nothing else)")
    r.add_argument("--work", type=Path, default=Path("runs/campaign"),
                   help="run directories, exports and the Kodak benchmark (default runs/campaign)")
    r.add_argument("--run", action="append", required=True, metavar="'CONFIG [OPTIONS]'")
    r.add_argument("--common", default="", help="hific train options for every run (one quoted string)")
    r.add_argument("--time-budget", type=float, required=True, metavar="SECONDS", help="training time of each run")
    r.add_argument("--kodak", type=Path, help="folder of Kodak images to measure the exports on")
    r.add_argument("--piece-mib", type=float, default=16.0, help="largest piece of checkpoints.tar (MiB)")
    j = sub.add_parser("join", help="reassemble and verify the checkpoints of a campaign's output")
    j.add_argument("folder", type=Path)
    j.add_argument("--into", type=Path, required=True)
    args = ap.parse_args(argv)
    try:
        if args.verb == "join":
            for path in join(args.folder, args.into):
                print(path)
            return 0
        if args.time_budget <= 0 or args.piece_mib <= 0:
            raise HificError("--time-budget and --piece-mib must be positive")
        runs = [CampaignRun.parse(spec) for spec in args.run]
        files = run_campaign(runs, shlex.split(args.common), args.out, args.work, args.time_budget, args.kodak,
                             int(args.piece_mib * 2 ** 20))
    except HificError as e:
        print(f"campaign: error: {e}", file=sys.stderr)
        return 2
    for path in files:
        print(f"{path}  {path.stat().st_size / 2 ** 20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
