"""A time-budgeted training campaign for a borrowed GPU (see :mod:`hific.train.campaign`).

    python benchmarks/campaign.py run --out OUT --time-budget 480 --kodak DIR \\
        --run "hific-lo --warm-start hific-lo --steps 60000" --run "hific-hi --warm-start hific-hi --target-bpp 0.415 --steps 60000" \\
        --common "--device cuda --batch-size 8 --crop 256 --data D1 D2 --val V --val-every 500"
    python benchmarks/campaign.py join OUT --into hific/checkpoints/new

``kit`` takes ``run``'s arguments on this machine and packs everything the runs read (starting checkpoints,
images, LPIPS's weights, the wheels the GPU machine lacks) into one folder with the command that runs them there:

    python benchmarks/campaign.py kit --into carry --time-budget 480 --run ... --common "--data D1 D2 --val V ..."
    OUT=... bash carry/run.sh        # on the GPU machine, from the repository's root

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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hific.errors import HificError  # noqa: E402
from hific.train.campaign import CampaignRun, join, run_campaign  # noqa: E402
from hific.train.campaign_kit import build_kit  # noqa: E402


def _campaign_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments ``run`` and ``kit`` share: the runs, their common options, the budget, Kodak."""
    p.add_argument("--run", action="append", required=True, metavar="'CONFIG [OPTIONS]'")
    p.add_argument("--common", default="", help="hific train options for every run (one quoted string)")
    p.add_argument("--time-budget", type=float, required=True, metavar="SECONDS", help="training time of each run")
    p.add_argument("--kodak", type=Path, help="folder of Kodak images to measure the exports on")
    p.add_argument("--piece-mib", type=float, default=16.0, help="largest piece of checkpoints.tar (MiB)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="verb", required=True)
    r = sub.add_parser("run", help="train, export, measure and pack")
    k = sub.add_parser("kit", help="pack a run's inputs and its command into one folder for the GPU machine")
    k.add_argument("--into", type=Path, required=True, help="a fresh folder inside the repository, e.g. carry")
    k.add_argument("--no-wheels", action="store_true", help="leave out the wheels (the machine has the packages)")
    k.add_argument("--limit-mib", type=float, default=64.0, help="most the working tree and kit may weigh (MiB)")
    for p in (r, k):
        _campaign_arguments(p)
    r.add_argument("--out", type=Path, required=True, help="where the packed files go (nothing else)")
    r.add_argument("--work", type=Path, default=Path("runs/campaign"),
                   help="run directories, exports and the Kodak benchmark (default runs/campaign)")
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
        if args.verb == "kit":
            kit = build_kit(args.into, runs, shlex.split(args.common), args.time_budget, args.kodak, REPO,
                            args.piece_mib, wheels=not args.no_wheels, limit=int(args.limit_mib * 2 ** 20))
            for part, size in kit.sizes.items():
                print(f"{part:>6}  {size / 2 ** 20:6.1f} MiB")
            print(f"{kit.total / 2 ** 20:.1f} MiB travel; move hific/checkpoints/*.pt aside, then on the GPU machine "
                  f"(carry {kit.folder}): bash {kit.script}")
            return 0
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
