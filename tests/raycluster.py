"""A real Ray cluster of two nodes on loopback for the tests (issue 23): a head
(``ray start --head``) and a second node (``ray start --address``), one CPU each, their
own temp dirs, on 127.0.0.2 / 127.0.0.3 so that Ray keeps every connection on the
loopback interface (it swaps 127.0.0.1 for the host's address). Started once per test
session by the ``ray_cluster`` fixture of tests/conftest.py and stopped after.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAD_IP, NODE_IP = "127.0.0.2", "127.0.0.3"  # not 127.0.0.1: Ray swaps that for the host IP
DEADLINE = 120.0  # seconds: bounds a broken run only; nothing asserts on durations


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HEAD_IP, 0))
        return int(s.getsockname()[1])


def _until(cond: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.1)


def _stop_with_parent() -> None:
    """In the child before exec: SIGTERM when the test process dies (even by SIGKILL or
    abort, when no fixture teardown runs), so `ray start --block` stops its node."""
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Cluster:
    address: str
    env: dict[str, str]
    base: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, *args: str) -> None:
        temp = self.base / name
        temp.mkdir(exist_ok=True)
        log = open(self.base / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        self.procs[name] = subprocess.Popen(
            [str(Path(sys.executable).parent / "ray"), "start", "--block", "--num-cpus=1",
             "--num-gpus=0", f"--temp-dir={temp}", "--disable-usage-stats", *args],
            stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True,
            preexec_fn=_stop_with_parent)

    def tree(self, name: str) -> list[Any]:
        """The node's processes: its `ray start`, raylet, workers, agents."""
        import psutil

        try:
            root = psutil.Process(self.procs[name].pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def busy_workers(self, name: str) -> list[Any]:
        """Worker processes of this node that are running one of our tasks (Ray titles a
        worker ``ray::<function>`` while it runs that function)."""
        import psutil

        out = []
        for p in self.tree(name):
            try:
                if p.cmdline()[:1] == ["ray::_call"]:
                    out.append(p)
            except psutil.Error:
                pass
        return out

    def kill(self, name: str) -> None:
        """The node is lost: SIGKILL to every process of it at once."""
        import psutil

        procs = self.tree(name)
        for p in procs:
            try:
                p.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(procs, timeout=30)

    def stop(self, name: str) -> None:
        import psutil

        proc = self.procs.get(name)
        if proc is None or proc.poll() is not None:
            self.kill(name)
            return
        procs = self.tree(name)
        proc.send_signal(signal.SIGTERM)  # `ray start --block` stops its node's processes
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        for p in procs:
            try:
                p.kill()
            except psutil.Error:
                pass

    def alive_nodes(self) -> int:
        import ray

        return sum(bool(n.get("Alive")) for n in ray.nodes())

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}"
                         for p in self.base.glob("*.log"))


def start_cluster() -> Iterator[Cluster]:
    """Start the two nodes, join them from this process, yield; stop both after."""
    ray = pytest.importorskip("ray", reason="the Ray extra is missing: "
                                            "pip install -e '.[test,ray]'")
    port = _free_port()
    # short: Ray's socket paths live under the temp dir (AF_UNIX path limit)
    base = Path(tempfile.mkdtemp(prefix="dq-ray-", dir="/tmp"))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
        RAY_USAGE_STATS_ENABLED="0", OMP_NUM_THREADS="1",
        # a loopback-only test cluster: no token (Ray >= 2.5x turns token auth on when
        # ~/.ray/auth_token exists, which a driver joining by address then lacks)
        RAY_AUTH_MODE="disabled",
        # a lost node is declared dead after 1 s x 3 missed health checks (default 15 s)
        RAY_health_check_period_ms="1000", RAY_health_check_failure_threshold="3")
    c = Cluster(address=f"{HEAD_IP}:{port}", env=env, base=base)
    c.start("head", "--head", f"--port={port}", f"--node-ip-address={HEAD_IP}",
            "--include-dashboard=false")
    try:
        def head_up() -> bool:
            if c.procs["head"].poll() is not None:
                pytest.fail(f"the Ray head did not start\n{c.logs()}")
            with socket.socket() as s:
                return s.connect_ex((HEAD_IP, port)) == 0

        _until(head_up, "the Ray head's port")
        c.start("node", f"--address={c.address}", f"--node-ip-address={NODE_IP}")
        os.environ["RAY_ADDRESS"] = c.address  # what cluster.address: auto joins
        os.environ["RAY_AUTH_MODE"] = "disabled"
        def joined() -> bool:  # the port answers before the GCS is ready: retry
            try:
                # log_to_driver off: the session-long driver would otherwise print
                # raylet warnings (e.g. "disk over 95% full") into whichever later
                # test happens to be capturing stderr
                ray.init(address=c.address, _node_ip_address=HEAD_IP,
                         logging_level="WARNING", log_to_driver=False)
                return True
            except (ConnectionError, RuntimeError):
                return False

        _until(joined, "the Ray head to accept a driver")
        _until(lambda: c.alive_nodes() == 2, "both Ray nodes")
        yield c
    finally:
        if ray.is_initialized():
            ray.shutdown()
        os.environ.pop("RAY_ADDRESS", None)
        os.environ.pop("RAY_AUTH_MODE", None)
        for name in ("node", "head"):
            c.stop(name)
        shutil.rmtree(base, ignore_errors=True)


