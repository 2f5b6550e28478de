"""`make bench`: run every benchmark script and print its figures."""
from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from pathlib import Path


def main() -> int:
    here = Path(__file__).resolve().parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    selected = [n for n in names if not sys.argv[1:] or any(a in n for a in sys.argv[1:])]
    for name in selected:
        started = time.perf_counter()
        importlib.import_module(f"benchmarks.{name}").main()
        print(f"-- {name} took {time.perf_counter() - started:.1f} s\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
