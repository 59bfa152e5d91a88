"""``bench run --executor ray``: the same matrix as Ray actors, one per method.

Each actor builds its method once (its weights stay loaded) and computes that method's
(clip, method) units with a serial ``Runner`` of its own; the driver streams the source,
sends each clip to every method's actor, and collects rows, FVD features and stage timings
in the serial order, so rows.csv is the serial run's (timing columns aside). Every result
goes through the same content-addressed cache, which must be on storage the workers share
(one machine, or a shared file system on a cluster). On ``--device cuda`` each actor asks
Ray for one GPU. Ray is optional: ``pip install -e ".[ray]"``.
"""

from __future__ import annotations

import dataclasses
import re
import socket
from typing import Optional

from bench.core.api import BenchError, ClipError
from bench.core.timing import StageTimes
from bench.run.runner import MissingMethod, RunConfig, Runner, RunSummary, run

EXECUTORS = ("serial", "ray")

RAY_MISSING = ('the ray executor needs Ray, which is not installed: pip install -e ".[ray]" '
               "(or pip install ray)")
_ADDRESS = re.compile(r"^(auto|[A-Za-z0-9_.\-]+:\d{1,5})$")


def import_ray():
    """The ``ray`` module, or BenchError saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise BenchError(RAY_MISSING) from exc
    return ray


def check_address(address: Optional[str]) -> Optional[str]:
    """``None`` (start a local Ray), ``auto`` or ``HOST:PORT``; anything else: BenchError."""
    if address is None or _ADDRESS.match(address):
        return address
    raise BenchError(f"--address must be auto or HOST:PORT (e.g. 10.0.0.5:6379), not "
                     f"{address!r}")


def probe_address(address: str, timeout_s: float = 5.0) -> None:
    """BenchError unless something accepts TCP connections at ``HOST:PORT`` within
    ``timeout_s`` (Ray itself would retry an unreachable head for minutes)."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise BenchError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc} "
                         f"(is `ray start --head --port={port}` running there?)") from exc


def connect(address: Optional[str], num_cpus: Optional[int] = None):
    """Join the cluster at ``address`` (None: start a local one with ``num_cpus``); returns
    the ray module and whether this call started Ray (so the run shuts it down)."""
    ray = import_ray()
    check_address(address)
    if address not in (None, "auto"):
        probe_address(address)
    if ray.is_initialized():
        return ray, False
    try:
        if address is None:
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
    except Exception as exc:  # ConnectionError, RuntimeError, ...: one message for the user
        where = "a local Ray" if address is None else f"the Ray cluster at {address}"
        raise BenchError(f"cannot start or reach {where}: {type(exc).__name__}: {exc}") from exc
    return ray, True


def actor_resources(cluster: dict, actors: int, threads: int, cuda: bool) -> tuple[float, float]:
    """(CPUs, GPUs) each of ``actors`` actors asks for: ``threads`` CPUs and one GPU, shared
    out when the cluster has fewer (an actor holds its resources for its life, so asking for
    more than there is would leave some actors unscheduled and the run waiting forever)."""
    total_cpus = float(cluster.get("CPU", 1.0))
    cpus = min(float(threads), total_cpus / max(actors, 1))
    gpus = 0.0
    if cuda:
        total_gpus = float(cluster.get("GPU", 0.0))
        if total_gpus <= 0:
            raise BenchError("--device cuda with --executor ray: the Ray cluster has no GPU")
        gpus = min(1.0, total_gpus / max(actors, 1))
    return cpus, gpus


class MethodWorker:
    """The body of a Ray actor: one method's serial runner."""

    def __init__(self, config: RunConfig, name: str, threads: int = 1):
        import torch

        torch.set_num_threads(max(1, int(threads)))
        self.runner = Runner(dataclasses.replace(config, methods=name, executor="serial",
                                                 progress=False))
        self.method = self.runner.methods[0]

    def unit(self, index: int, clip) -> tuple:
        """``(rows, rows computed, FVD feature pairs, stage timings)`` of one clip."""
        runner = self.runner
        runner.times = StageTimes()
        if runner.fvd is not None:
            runner.fvd.times = runner.times
        before = runner.computed
        rows = runner._unit(index, clip, self.method)
        pairs = runner.fvd_pairs.pop(self.method.name, [])
        return rows, runner.computed - before, pairs, runner.times.raw()


class RayRunner(Runner):
    """A Runner whose (clip, method) units run on one Ray actor per available method."""

    def __init__(self, config: RunConfig, ray, threads_per_worker: int = 1):
        super().__init__(config)
        self.ray = ray
        names = [m.name for m in self.methods if not isinstance(m, MissingMethod)]
        cpus, gpus = actor_resources(ray.cluster_resources(), len(names), threads_per_worker,
                                     self.device.startswith("cuda"))
        actor = ray.remote(num_cpus=cpus, num_gpus=gpus)(MethodWorker)
        self.workers = {name: actor.remote(config, name, threads_per_worker) for name in names}

    def _clip_units(self, index: int, clip) -> list[tuple]:
        remote = {} if isinstance(clip, ClipError) else {
            name: worker.unit.remote(index, clip) for name, worker in self.workers.items()}
        out = []
        for method in self.methods:
            if method.name not in remote:
                out.append((method, self._unit(index, clip, method), 0))
                continue
            try:
                rows, computed, pairs, times = self.ray.get(remote[method.name])
            except Exception as exc:  # a dead worker: the method's rows of this clip fail
                rows = self._error_rows(index, clip.id, self._logo_for(index), method,
                                        f"ray worker failed: {type(exc).__name__}: {exc}")
                computed, pairs, times = 0, [], None
            self.computed += computed
            self.fvd_pairs.setdefault(method.name, []).extend(pairs)
            if times is not None:
                self.times.merge(times)
            out.append((method, rows, computed))
        return out


def ray_run(config: RunConfig, num_cpus: Optional[int] = None) -> RunSummary:
    """Run ``config`` on Ray: connect (or start a local Ray) before anything is written, so
    a missing Ray or a bad address leaves no results folder behind."""
    ray, started = connect(config.address, num_cpus)
    try:
        return RayRunner(config, ray).run()
    finally:
        if started:
            ray.shutdown()


def execute(config: RunConfig) -> RunSummary:
    """Run ``config`` with its executor: ``serial`` (this process) or ``ray``."""
    if config.executor == "ray":
        return ray_run(config)
    if config.executor != "serial":
        raise BenchError(f"unknown executor {config.executor!r}: {' or '.join(EXECUTORS)}")
    return run(config)
