"""Per-stage wall time, CPU time and peak resident memory of the current process.

The peak is the kernel's own high-water mark (``VmHWM`` in ``/proc/self/status``), reset at the
start of each stage by writing ``5`` to ``/proc/self/clear_refs`` (Linux >= 4.0): so a stage's
peak is the most memory the process held *during that stage*, including what earlier stages
left in memory. Where the reset is not possible the process peak so far is reported instead.
CPU time counts this process and its finished children (user + system); children's memory is
not in the peak (the scaling benchmark adds the figure helper's own).
"""

from __future__ import annotations

import json
import os
import resource
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path


def _cpu() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def rss_mb(key: str = "VmHWM") -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


@dataclass
class Stage:
    name: str
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    start_rss_mb: float


@dataclass
class Meter:
    """``meter.start("x")`` ... ``meter.start("y")`` ... ``meter.stop()``: one record per stage."""

    stages: list[Stage] = field(default_factory=list)
    _open: tuple[str, float, float, float] | None = None
    #: If set, every finished stage is written there at once (a killed run keeps what it measured).
    path: Path | None = None

    def start(self, name: str) -> None:
        self.stop()
        reset_peak()
        self._open = (name, time.perf_counter(), _cpu(), rss_mb("VmRSS"))

    def stop(self) -> None:
        if self._open is None:
            return
        name, t, c, r = self._open
        self.stages.append(Stage(name, time.perf_counter() - t, _cpu() - c, rss_mb("VmHWM"), r))
        self._open = None
        if self.path is not None:
            self.path.write_text(json.dumps({"stages": [asdict(s) for s in self.stages], "partial": True}, indent=1))

    def dump(self, path: Path, **extra: object) -> None:
        self.stop()
        payload = {"stages": [asdict(s) for s in self.stages], "pid": os.getpid(), **extra}
        path.write_text(json.dumps(payload, indent=1))


def speed_probe(seed: int = 0) -> dict[str, float]:
    """Seconds of two fixed single-threaded workloads, to compare machines (or one machine's days).

    A shared machine's speed varies by 2-3x from one day to the next; a run's wall time means
    little without it. ``lightgbm_fit_s``: 200 rounds on 20,000 x 20 fixed rows, one thread.
    ``csv_parse_s``: pandas parsing 500,000 rows of (id, timestamp, type), as loading activities.
    """
    import io

    import lightgbm as lgb
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(20_000, 20))
    y = (X[:, 0] + X[:, 1] * X[:, 2] + rng.normal(size=len(X)) > 0).astype(int)
    params = {"objective": "binary", "num_threads": 1, "deterministic": True, "verbose": -1, "seed": seed}
    t = time.perf_counter()
    lgb.train(params, lgb.Dataset(X, y), num_boost_round=200)
    fit_s = time.perf_counter() - t
    n = 500_000
    times = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365 * 86400, n), unit="s")
    text = pd.DataFrame({"account_id": rng.integers(0, 10**6, n), "occurred_at": times,
                         "activity_type": rng.choice(["email", "call", "web"], n)}).to_csv(index=False)  # fmt: skip
    t = time.perf_counter()
    pd.read_csv(io.StringIO(text), parse_dates=["occurred_at"], dtype={"account_id": str, "activity_type": str})
    return {"lightgbm_fit_s": round(fit_s, 2), "csv_parse_s": round(time.perf_counter() - t, 2)}
