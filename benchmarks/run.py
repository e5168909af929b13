"""Rate-perception benchmark: ``python benchmarks/run.py --codecs hific,bpg [--dataset kodak] ...``.

See ``python benchmarks/run.py --help``; the work is done by :mod:`hific.bench`.
"""
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hific.bench.command import main  # noqa: E402

if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a terminated run writes its tables too
    sys.exit(main())
