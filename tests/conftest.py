"""Test-wide guarantees: offline, no socket leaves the machine, one shared toy-world cache."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import tempfile
import sys
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# `evaluate` copies every module it loads into its caches, under HF_HOME by default: a test session's copies go to
# a folder of its own, removed at exit, never into the user's home.
_EVALUATE_CACHE = tempfile.mkdtemp(prefix="aligner-tests-evaluate-")
atexit.register(shutil.rmtree, _EVALUATE_CACHE, True)
for _name, _sub in (("HF_MODULES_CACHE", "modules"), ("HF_METRICS_CACHE", "metrics"), ("HF_EVALUATE_CACHE", "evaluate")):
    os.environ[_name] = os.path.join(_EVALUATE_CACHE, _sub)

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # benchmarks/ (the performance suite) is imported from the repository root
EXAMPLE_PLUGIN = REPO / "tests" / "plugins" / "aligner-example"


class NetworkBlocked(RuntimeError):
    pass


_real_connect = socket.socket.connect


def _guarded_connect(self, address):
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and (host.startswith("127.") or host in ("localhost", "::1") or host.startswith("/")):
        return _real_connect(self, address)
    raise NetworkBlocked(f"test tried to reach the network: {address!r}")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Every test runs with outbound connections refused, so passing tests prove nothing reaches out."""
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)


def write_dist_info(site: Path, project: Path) -> None:
    """Makes `project` (a folder with pyproject.toml) look pip-installed into `site`: its package on the path and
    a dist-info with its entry points, which is all importlib.metadata reads."""
    import tomllib

    meta = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    dist = site / f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n")
    lines = []
    for group, entries in meta.get("entry-points", {}).items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {value}" for name, value in entries.items()]
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture
def install_plugin(tmp_path, monkeypatch):
    """Installs a plugin project (a folder with pyproject.toml and its package) for this test only; returns the
    site folder to put on PYTHONPATH for subprocesses."""
    site = tmp_path / "site"

    def install(project: Path) -> Path:
        site.mkdir(exist_ok=True)
        write_dist_info(site, project)
        monkeypatch.syspath_prepend(str(project))
        monkeypatch.syspath_prepend(str(site))
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), str(project), os.environ.get("PYTHONPATH", "")]))
        import importlib

        importlib.invalidate_caches()
        return site

    yield install
    for name in [m for m in sys.modules if m.startswith(("aligner_example", "broken_", "dup_", "typo_", "raising_"))]:
        del sys.modules[name]


@pytest.fixture(scope="session")
def toy_world():
    from aligner.toy import world

    return world.ensure()
