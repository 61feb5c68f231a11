"""requirements/lock.txt, the environment `make` installs, agrees with pyproject.toml's ranges (the
dev and bench extras included) and with the CPU torch pin, and is what this environment holds."""

from __future__ import annotations

import importlib.metadata
import os
import re
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements" / "lock.txt"
DIRECT = "ja-adapt (pyproject.toml)"  # pip-compile's "# via" entry for a direct requirement


def parse_lock(text: str) -> dict[str, tuple[Version, set[str]]]:
    """{name: (version, what requires it)} of a pip-compile lock."""
    pins: dict[str, tuple[Version, set[str]]] = {}
    current = None
    for line in text.splitlines():
        pin = re.match(r"^([A-Za-z0-9._-]+)==(\S+)", line)
        if pin:
            current = canonicalize_name(pin.group(1))
            pins[current] = (Version(pin.group(2)), set())
            continue
        via = re.match(r"^\s+#\s+(?:via\s+)?(.+?)\s*$", line)
        if current and via and via.group(1) != "via":
            pins[current][1].add(via.group(1))
    return pins


def direct_requirements(pyproject: str) -> list[Requirement]:
    project = tomllib.loads(pyproject)["project"]
    extras = project["optional-dependencies"]
    reqs = [Requirement(r) for r in project["dependencies"] + extras["dev"] + extras["bench"]]
    return [r for r in reqs if r.marker is None or r.marker.evaluate()]


def lock_problems(pyproject: str, lock: str) -> list[str]:
    """What makes the lock disagree with pyproject.toml: a direct requirement missing or pinned
    outside its range, or a pin the lock holds only for a requirement pyproject no longer has."""
    pins = parse_lock(lock)
    problems = []
    wanted = set()
    for req in direct_requirements(pyproject):
        name = canonicalize_name(req.name)
        wanted.add(name)
        if name not in pins:
            problems.append(f"{req.name} is in pyproject.toml but not in the lock")
        elif not req.specifier.contains(pins[name][0], prereleases=True):
            problems.append(f"{req.name}=={pins[name][0]} in the lock is outside pyproject's '{req.specifier}'")
    for name, (version, via) in pins.items():
        if DIRECT in via and name not in wanted:
            problems.append(f"{name}=={version} is in the lock for pyproject.toml, which no longer asks for it")
    return problems


def test_the_lock_agrees_with_pyproject():
    problems = lock_problems((ROOT / "pyproject.toml").read_text(), LOCK.read_text())
    assert not problems, "; ".join(problems) + " — run `make lock`"


def test_the_check_catches_a_range_the_lock_breaks_and_a_dependency_it_lacks():
    pyproject, lock = (ROOT / "pyproject.toml").read_text(), LOCK.read_text()
    assert not lock_problems(pyproject, lock)
    narrowed = pyproject.replace('"scipy>=1.11"', '"scipy<1.0"')
    assert lock_problems(narrowed, lock) == [
        f"scipy=={parse_lock(lock)['scipy'][0]} in the lock is outside pyproject's '<1.0'"
    ]
    added = pyproject.replace('"pyyaml>=6",', '"pyyaml>=6", "not-a-locked-package>=1",')
    assert lock_problems(added, lock) == ["not-a-locked-package is in pyproject.toml but not in the lock"]
    dropped = pyproject.replace('"psutil>=5.9",', "")
    assert [p.split("==")[0] for p in lock_problems(dropped, lock)] == ["psutil"]


def test_every_pin_has_a_hash_and_torch_is_the_cpu_pin():
    text = LOCK.read_text()
    blocks = re.split(r"\n(?=[A-Za-z0-9._-]+==)", text.split("\n", 6)[-1])
    pinned = [b for b in blocks if re.match(r"[A-Za-z0-9._-]+==", b)]
    assert len(pinned) == len(parse_lock(text)) > 50
    assert all("--hash=sha256:" in b for b in pinned)
    cpu_pin = [
        line
        for line in (ROOT / "requirements" / "torch-cpu.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    torch_version = parse_lock(text)["torch"][0]
    assert cpu_pin == [f"torch=={torch_version.base_version}"] and torch_version.local == "cpu"


@pytest.mark.skipif(
    os.environ.get("JA_ADAPT_UNLOCKED") == "1",
    reason="JA_ADAPT_UNLOCKED=1: testing an environment of your own, not the lock",
)
def test_this_environment_is_the_lock():
    """What `make` installed is what the lock says (set JA_ADAPT_UNLOCKED=1 to test another
    environment, e.g. one with a CUDA torch)."""
    differ = []
    for name, (version, _) in parse_lock(LOCK.read_text()).items():
        try:
            installed = Version(importlib.metadata.version(name))
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            differ.append(f"{name}: lock {version}, installed {installed}")
    assert not differ, "; ".join(differ) + " — run `make install` (or `rm -rf .venv`)"
