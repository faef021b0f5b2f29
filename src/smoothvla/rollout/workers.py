"""The pool core: envs on worker processes or Ray actors, one call per chunk, with
timeouts and restarts (`WorkerPool`), and its local transport (`ProcessTransport`,
`ProcessPool`). The records, the env slots a worker hosts, `InProcessPool` and `make_pool`
are `rollout/pool.py`'s; the Ray transport is `rollout/ray_pool.py`'s.
"""

from __future__ import annotations

import multiprocessing as mp
import multiprocessing.connection
import os
import pickle
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol, Unpack

import numpy as np

from smoothvla.rollout.pool import (
    CallStats,
    EnvFactory,
    EnvResult,
    Failure,
    PoolOptions,
    ResetRequest,
    _check_indices,
    pool_options,
    _render_total,
    _resolve_factory,
    _serve,
    _Slot,
)


def die_with_parent() -> None:
    """Call first thing in a worker process: on Linux the kernel then SIGKILLs it when the
    process that started it dies, even by SIGKILL (prctl PR_SET_PDEATHSIG), so a killed run
    leaves no workers behind. A worker whose parent already died exits at once. The kernel
    ties this to the thread that started the worker, so start pools from a thread that
    outlives them (every caller here uses the main thread). Elsewhere a no-op
    (ProcessPool workers still leave on EOF of their pipe)."""
    if sys.platform != "linux":
        return
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    parent = mp.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # died before prctl took effect
        os._exit(1)


def _worker_main(
    conn: mp.connection.Connection, num_slots: int, factory_bytes: bytes, options: dict
) -> None:
    die_with_parent()
    # Set before anything imports torch or mujoco: one thread per worker on shared CPUs, and
    # offscreen rendering for MuJoCo suites.
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    factory = _resolve_factory(pickle.loads(factory_bytes))
    slots = [_Slot(factory, options) for _ in range(num_slots)]
    conn.send(("ready", os.getpid()))
    while True:
        try:
            op, payload = conn.recv()
        except (EOFError, KeyboardInterrupt):
            break
        if op == "close":
            break
        conn.send(_serve(slots, op, payload))
    for slot in slots:
        slot.discard()


class Transport(Protocol):
    """How a `WorkerPool` reaches its workers: local processes over pipes
    (`ProcessTransport`) or Ray actors (`ray_pool.RayTransport`). A worker hosts `_Slot`s
    and answers each call with `_serve`'s replies; the transport only moves calls, replies
    and workers' lives. Failures it reports are `Failure`s naming the worker w."""

    noun: str
    """What a worker is called in messages: "worker", "actor"."""
    renewed: str
    """What happens to a broken one, in messages: "restarted", "replaced"."""
    queues_calls: bool
    """Whether a worker takes a call while an earlier one is in flight (it queues them); if
    not, the pool first waits for the earlier reply."""

    def spawn(self, envs: list[int]) -> Any:
        """Start a worker hosting `len(envs)` envs; returns its handle at once."""

    def ready(self, handle: Any, timeout_s: float) -> int:
        """Wait for a started worker; returns its process id. RuntimeError (and the worker
        killed) if it does not start within `timeout_s` or dies starting."""

    def send(self, handle: Any, w: int, op: str, payload: dict[int, Any]) -> Any:
        """Send a call; returns what `wait` and `receive` need, or a `Failure`."""

    def wait(self, calls: dict[int, tuple[Any, Any]], timeout_s: float) -> list[int]:
        """The workers among `calls` ({w: (handle, call)}) whose reply is in, waiting up to
        `timeout_s` for at least one."""

    def receive(self, handle: Any, w: int, call: Any) -> dict[int, EnvResult | Failure] | Failure:
        """The replies of a call whose reply is in, or the worker's `Failure`."""

    def kill(self, handle: Any) -> None:
        """Stop one worker now."""

    def close(self, handles: list[Any]) -> None:
        """Stop every worker (and whatever the transport started for them)."""


@dataclass
class _Ticket:
    """A call in flight: what was sent to which worker (and its handle then), the calls,
    and what came back."""

    id: int
    op: str
    start: float
    by_worker: dict[int, dict[int, Any]] = field(default_factory=dict)
    handles: dict[int, Any] = field(default_factory=dict)
    calls: dict[int, Any] = field(default_factory=dict)
    early: dict[int, Failure] = field(default_factory=dict)
    replies: dict[int, dict[int, EnvResult | Failure]] = field(default_factory=dict)
    broken: dict[int, Failure] = field(default_factory=dict)


def check_pool_sizes(num_envs: int, num_workers: int | None, timeout_s: float,
                     start_timeout_s: float) -> None:
    """ValueError for a pool without envs or workers, or with a non-positive timeout."""
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    if num_workers is not None and num_workers < 1:
        raise ValueError(f"num_workers must be >= 1, got {num_workers}")
    if timeout_s <= 0 or start_timeout_s <= 0:
        raise ValueError("timeout_s and start_timeout_s must be positive")


class WorkerPool:
    """Envs on `num_workers` workers behind a `Transport`; dead or hung workers are renewed.

    Env i lives on worker i // ceil(num_envs / num_workers). `submit` sends a call ("reset"
    or "run") and returns a ticket at once, so the collector's lanes can act on one block of
    envs while another simulates; `result` waits for it; `reset`/`run` are both in one.
    `timeout_s` bounds one call from its submission (every env of a worker, in sequence on
    that worker); `start_timeout_s` bounds a worker's start (imports) separately. A worker
    that dies or does not answer in time is killed and started afresh, once the call's
    other replies are in; the episodes it hosted come back as `Failure`s ("crash" or
    "timeout"), which the collector drops and counts, and a "run" on an env whose worker was
    renewed since its reset fails the same way.
    """

    def __init__(self, transport: Transport, num_envs: int, num_workers: int, *,
                 timeout_s: float, start_timeout_s: float) -> None:
        check_pool_sizes(num_envs, num_workers, timeout_s, start_timeout_s)
        self.transport = transport
        self.num_envs = num_envs
        self.timeout_s = timeout_s
        self.start_timeout_s = start_timeout_s
        self.last_call = CallStats()
        self.failures: Counter = Counter()
        self.restarts = 0
        per_worker = -(-num_envs // num_workers)
        self._groups = [list(range(s, min(s + per_worker, num_envs)))
                        for s in range(0, num_envs, per_worker)]
        self._owner = {env: w for w, envs in enumerate(self._groups) for env in envs}
        self._lost: set[int] = set()
        self._tickets: dict[int, _Ticket] = {}
        self._inflight: dict[int, int | None] = {}
        self._next_ticket = 0
        self._workers: list[Any] = []
        self._pids: list[int] = []
        try:
            for envs in self._groups:
                self._workers.append(transport.spawn(envs))
            for handle in self._workers:
                self._pids.append(transport.ready(handle, start_timeout_s))
        except BaseException:
            self.close()  # no worker outlives a failed start
            raise

    @property
    def worker_pids(self) -> list[int]:
        """Process id of each worker (on its machine; changes when a worker is renewed)."""
        return list(self._pids)

    def reset(self, requests: dict[int, ResetRequest]) -> dict[int, EnvResult | Failure]:
        return self.result(self.submit("reset", requests))

    def run(self, actions: dict[int, np.ndarray]) -> dict[int, EnvResult | Failure]:
        return self.result(self.submit("run", actions))

    def submit(self, op: str, payload: dict[int, Any]) -> int:
        """Send a call ("reset" or "run") to the workers and return at once with a ticket for
        `result`. Calls to one worker run in submission order."""
        _check_indices(payload, self.num_envs)
        ticket = _Ticket(self._next_ticket, op, time.perf_counter())
        self._next_ticket += 1
        for env, arg in payload.items():
            if op == "reset":
                self._lost.discard(env)
            elif env in self._lost:
                ticket.early[env] = Failure(
                    "crash", f"its {self.transport.noun} was {self.transport.renewed} during "
                    "an earlier call")
                continue
            w = self._owner[env]
            ticket.by_worker.setdefault(w, {})[self._groups[w].index(env)] = arg
        self._tickets[ticket.id] = ticket
        for w, local_payload in ticket.by_worker.items():
            if not self.transport.queues_calls and self._inflight.get(w) is not None:
                self._settle(w)
            ticket.handles[w] = self._workers[w]
            call = self.transport.send(self._workers[w], w, op, local_payload)
            if isinstance(call, Failure):
                ticket.broken[w] = call
                self._renew(ticket, w)
            else:
                ticket.calls[w] = call
                self._inflight[w] = ticket.id
        return ticket.id

    def result(self, ticket_id: int) -> dict[int, EnvResult | Failure]:
        """Wait for the replies of a submitted call; workers that died or did not answer
        within `timeout_s` of the submission are renewed and their envs' episodes fail."""
        ticket = self._tickets.pop(ticket_id)
        deadline = ticket.start + self.timeout_s
        pending = {w for w in ticket.by_worker if w not in ticket.replies and w not in ticket.broken}
        while pending:
            # past the deadline, replies already in still count (renewing another worker
            # may have kept this call from looking for them in time)
            remaining = max(deadline - time.perf_counter(), 0.0)
            calls = {w: (ticket.handles[w], ticket.calls[w]) for w in pending}
            ready = self.transport.wait(calls, remaining)
            for w in ready:
                pending.discard(w)
                self._receive(ticket, w)
            if not ready:
                break
        for w in pending:
            ticket.broken[w] = self._timeout(w)
        for w in ticket.broken:
            self._renew(ticket, w)

        results: dict[int, EnvResult | Failure] = dict(ticket.early)
        critical = 0.0
        for w, local_payload in ticket.by_worker.items():
            envs = self._groups[w]
            if w in ticket.broken:
                results.update({envs[local]: ticket.broken[w] for local in local_payload})
                continue
            replies = ticket.replies[w]
            critical = max(
                critical, sum(r.sim_s for r in replies.values() if isinstance(r, EnvResult))
            )
            results.update({envs[local]: reply for local, reply in replies.items()})
        sim = sum(r.sim_s for r in results.values() if isinstance(r, EnvResult))
        self.last_call = CallStats(time.perf_counter() - ticket.start, sim, critical,
                                   _render_total(results))
        self.failures.update(r.kind for r in results.values() if isinstance(r, Failure))
        return results

    def _timeout(self, w: int) -> Failure:
        return Failure("timeout", f"{self.transport.noun} {w} did not answer within "
                                  f"{self.timeout_s:.1f} s")

    def _receive(self, ticket: _Ticket, w: int) -> None:
        """Read worker w's reply to `ticket`'s call (which is in)."""
        reply = self.transport.receive(ticket.handles[w], w, ticket.calls[w])
        if self._inflight.get(w) == ticket.id:
            self._inflight[w] = None
        if isinstance(reply, Failure):
            ticket.broken[w] = reply
        else:
            ticket.replies[w] = reply

    def _settle(self, w: int) -> None:
        """Wait for worker w's reply to an earlier call and keep it for that call's `result`
        (a worker that does not queue calls takes the next one only then)."""
        ticket = self._tickets[self._inflight[w]]
        self._inflight[w] = None
        remaining = ticket.start + self.timeout_s - time.perf_counter()
        if self.transport.wait({w: (ticket.handles[w], ticket.calls[w])}, max(remaining, 0.0)):
            self._receive(ticket, w)
        else:
            ticket.broken[w] = self._timeout(w)
        if w in ticket.broken:
            self._renew(ticket, w)

    def _renew(self, ticket: _Ticket, w: int) -> None:
        """Replace worker w after it failed `ticket`'s call, unless it was replaced already
        (another call it had queued found it dead first)."""
        old = ticket.handles[w]
        if self._workers[w] is not old:
            return
        self.transport.kill(old)
        self._lost.update(self._groups[w])
        self._inflight[w] = None
        self.restarts += 1
        self._workers[w] = self.transport.spawn(self._groups[w])
        self._pids[w] = self.transport.ready(self._workers[w], self.start_timeout_s)

    def close(self) -> None:
        """Stop every worker."""
        workers, self._workers = self._workers, []
        self.transport.close(workers)

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class _Worker:
    process: Any
    conn: mp.connection.Connection


class ProcessTransport:
    """Workers as spawned local processes, one duplex pipe each, one call in flight each."""

    noun = "worker"
    renewed = "restarted"
    queues_calls = False

    def __init__(self, env_factory: EnvFactory | None, env_options: dict[str, Any]) -> None:
        try:
            self._factory_bytes = pickle.dumps(env_factory)
        except (pickle.PicklingError, AttributeError, TypeError) as err:
            raise ValueError(
                "ProcessPool's env_factory must be picklable (a module-level function or "
                f"class, not a lambda or closure): {err}"
            ) from err
        self._options = dict(env_options)
        self._ctx = mp.get_context("spawn")

    def spawn(self, envs: list[int]) -> _Worker:
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(
            target=_worker_main,
            args=(child_conn, len(envs), self._factory_bytes, self._options),
            daemon=True,
            name=f"smoothvla-env-worker-{envs[0]}",
        )
        process.start()
        child_conn.close()  # so that the worker's death shows up as EOF on our end
        return _Worker(process, parent_conn)

    def ready(self, worker: _Worker, timeout_s: float) -> int:
        if not worker.conn.poll(timeout_s):
            self.kill(worker)
            raise RuntimeError(f"env worker did not start within {timeout_s:.0f} s")
        try:
            tag, pid = worker.conn.recv()
        except EOFError as err:
            raise RuntimeError(
                f"env worker died while starting (exit code {worker.process.exitcode}); "
                "is the env factory importable and picklable?"
            ) from err
        assert tag == "ready"
        return pid

    def send(self, worker: _Worker, w: int, op: str, payload: dict[int, Any]) -> Any:
        try:
            worker.conn.send((op, payload))
        except (BrokenPipeError, ConnectionResetError, OSError) as err:
            return Failure("crash", f"worker {w} pipe broken on send: {err}")
        return None

    def wait(self, calls: dict[int, tuple[_Worker, Any]], timeout_s: float) -> list[int]:
        conns = {worker.conn: w for w, (worker, _) in calls.items()}
        return [conns[c] for c in mp.connection.wait(list(conns), timeout=timeout_s)]

    def receive(self, worker: _Worker, w: int, call: Any) -> dict[int, EnvResult | Failure] | Failure:
        try:
            return worker.conn.recv()
        except (EOFError, ConnectionResetError, OSError):
            return Failure("crash", f"worker {w} died (exit code {worker.process.exitcode})")

    def kill(self, worker: _Worker) -> None:
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(timeout=10)
        worker.conn.close()

    def close(self, workers: list[_Worker]) -> None:
        """Politely, then by force."""
        for worker in workers:
            try:
                worker.conn.send(("close", None))
            except (BrokenPipeError, ConnectionResetError, OSError):
                pass
        for worker in workers:
            worker.process.join(timeout=5)
            self.kill(worker)


class ProcessPool(WorkerPool):
    """Envs in `num_workers` spawned local processes (default: one per CPU, at most one per
    env); dead or hung workers are restarted. See `WorkerPool`."""

    def __init__(self, num_envs: int, **options: Unpack[PoolOptions]) -> None:
        o = pool_options(options)
        check_pool_sizes(num_envs, None, o["timeout_s"], o["start_timeout_s"])
        transport = ProcessTransport(o["env_factory"], o["env_options"] or {})
        super().__init__(transport, num_envs,
                         min(num_envs, o["num_workers"] or os.cpu_count() or 1),
                         timeout_s=o["timeout_s"], start_timeout_s=o["start_timeout_s"])
