"""Cold start: wall time of `import app` in a fresh interpreter, beside the floor
`import chalice, boto3`, and what `import app` spends its time on (`-X importtime`)."""
from __future__ import annotations

import collections
import os
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks.common import ROOT

RUNS = 20
IMPORTTIME_RUNS = 5


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALOFT_", "AWS_ENDPOINT"))}
    env.update({"ALOFT_STAGE": "local", "AWS_DEFAULT_REGION": "us-east-1", **extra})
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _run(code: str, env: dict, args: tuple = ()) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, *args, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    if done.returncode:
        raise RuntimeError(f"{code!r} failed: {done.stderr[-2000:]}")
    return done


def _wall_times(codes: list[str], runs: int = RUNS, fresh_cache: bool = False) -> dict[str, list[float]]:
    """Seconds per fresh interpreter for each snippet. Rounds interleave the snippets, so a busy
    machine slows them alike. With fresh_cache every run gets an empty bytecode cache, so
    every module is compiled from source."""
    env = _env()
    for code in codes:
        _run(code, env)  # warm the OS file cache and write .pyc files first
    times: dict[str, list[float]] = {code: [] for code in codes}
    for _ in range(runs):
        for code in codes:
            with tempfile.TemporaryDirectory() as cache:
                run_env = {**env, "PYTHONPYCACHEPREFIX": cache} if fresh_cache else env
                started = time.perf_counter()
                _run(code, run_env)
                times[code].append(time.perf_counter() - started)
    return times


def _line(label: str, times: list[float]) -> str:
    return (f"{label:<44} median {statistics.median(times) * 1000:6.0f} ms, "
            f"min {min(times) * 1000:6.0f} ms ({len(times)} runs)")


def _importtime() -> tuple[list[tuple[str, float, float]], list[tuple[str, float]]]:
    """Median self/cumulative microseconds per module over a few `-X importtime` runs."""
    selfs: dict[str, list[int]] = collections.defaultdict(list)
    cumulative: dict[str, list[int]] = collections.defaultdict(list)
    env = _env()
    for _ in range(IMPORTTIME_RUNS):
        stderr = _run("import app", env, ("-X", "importtime")).stderr
        for line in stderr.splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            self_us, cumulative_us, name = (part.strip() for part in line[len("import time:"):].split("|"))
            selfs[name.strip()].append(int(self_us))
            cumulative[name.strip()].append(int(cumulative_us))
    modules = sorted(((name, statistics.median(selfs[name]), statistics.median(cumulative[name]))
                      for name in selfs), key=lambda row: -row[1])
    packages: dict[str, float] = collections.defaultdict(float)
    for name, self_us, _ in modules:
        packages[name.split(".")[0]] += self_us
    return modules[:10], sorted(packages.items(), key=lambda row: -row[1])[:10]


def main() -> None:
    print("== Cold start: fresh interpreter, cwd = repo root, .pyc cache warm ==")
    floor_code = "import chalice, boto3"
    times = _wall_times(["pass", "import chalice", floor_code, "import app"])
    interpreter, floor, app = times["pass"], times[floor_code], times["import app"]
    print(_line('python -c "pass" (interpreter alone)', interpreter))
    print(_line('python -c "import chalice"', times["import chalice"]))
    print(_line('python -c "import chalice, boto3" (floor)', floor))
    print(_line('python -c "import app"', app))
    print(f"import app minus floor: {(statistics.median(app) - statistics.median(floor)) * 1000:+.0f} ms "
          f"(median); minus interpreter: {(statistics.median(app) - statistics.median(interpreter)) * 1000:.0f} ms")
    # The Lambda zip carries no .pyc files and /var/task is read-only, so the packaged modules
    # (app, chalicelib, pydantic, ...) are compiled at every cold start; this is the upper bound
    # where everything, the standard library included, is compiled.
    cold = _wall_times([floor_code, "import app"], runs=5, fresh_cache=True)
    print(_line('no bytecode cache: "import chalice, boto3"', cold[floor_code]))
    print(_line('no bytecode cache: "import app"', cold["import app"]))

    modules, packages = _importtime()
    print(f"-X importtime, import app (median of {IMPORTTIME_RUNS} runs), top 10 modules by self time:")
    for name, self_us, cumulative_us in modules:
        print(f"  {self_us / 1000:6.1f} ms self {cumulative_us / 1000:7.1f} ms cumulative  {name}")
    print("  top 10 top-level packages by summed self time: " +
          ", ".join(f"{name} {self_us / 1000:.1f} ms" for name, self_us in packages))


if __name__ == "__main__":
    main()
