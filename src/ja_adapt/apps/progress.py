"""Progress of a multi-stage app (the demo): one overall bar and a line per stage."""

from __future__ import annotations

import contextlib
import time

from tqdm.auto import tqdm


class Stages:
    """One overall bar (units: estimated seconds, so its ETA is a time) and a line per stage.
    plan: stage name → its estimated seconds, in order; `times` holds each finished stage's."""

    def __init__(self, plan: dict[str, float], desc: str = "demo"):
        self.plan, self.times, self.desc = plan, {}, desc
        self.bar = tqdm(
            total=sum(plan.values()),
            desc=desc,
            unit="s",
            dynamic_ncols=True,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]",
        )

    @contextlib.contextmanager
    def stage(self, name: str):
        i = list(self.plan).index(name) + 1
        self.bar.set_description(f"{self.desc} [{i}/{len(self.plan)}] {name}")
        tqdm.write(f"{self.desc} [{i}/{len(self.plan)}] {name} ...")
        t0 = time.perf_counter()
        yield
        self.times[name] = time.perf_counter() - t0
        self.bar.update(self.plan[name])

    def close(self):
        self.bar.close()
