"""Local processes: a real ``redis-server``, the four services and the web page, started and stopped cleanly.

Used by ``designsearch up``/``demo`` and by the tests (which need a real Redis on loopback).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def _wait_http(url: str, timeout_s: float) -> None:
    """Poll ``url`` until it answers HTTP 200.

    Raises:
        TimeoutError: no 200 within ``timeout_s``.
    """
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=max(0.1, deadline - time.monotonic())) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer 200 within {timeout_s} s")
        time.sleep(0.1)


def port_is_free(port: int) -> bool:
    """Whether ``port`` can be bound on 127.0.0.1 now."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid`` (Linux ``/proc/<pid>/stat``, fields 14-15,
    see proc(5)); for benchmarks that account CPU per service process.

    Raises:
        FileNotFoundError: no such process (or not Linux).
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisProcess:
    """A ``redis-server`` bound to 127.0.0.1 on a free (or given) port, data in ``workdir``.

    Raises:
        FileNotFoundError: ``redis-server`` is not installed (``apt-get install -y redis-server``).
        TimeoutError: it did not answer PING within 10 s.
    """

    def __init__(self, workdir: str | Path, port: int | None = None, persist: bool = False) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server not found: install it with `apt-get install -y redis-server`")
        self.port = port or free_port()
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.workdir),
                "--save", "60 1" if persist else "", "--appendonly", "no", "--protected-mode", "yes"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        self._wait()

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def _wait(self) -> None:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with code {self.proc.returncode}")
            try:
                if client.ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise TimeoutError("redis-server did not answer PING within 10 s")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _pg_bindir() -> Path:
    """Folder of ``initdb`` and ``postgres`` (Debian keeps them in /usr/lib/postgresql/<major>/bin)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise FileNotFoundError("PostgreSQL not found: install it with `apt-get install -y postgresql`")
    return Path(initdb).parent


class PostgresProcess:
    """A throw-away PostgreSQL server on 127.0.0.1 (a fresh cluster with trust authentication on
    loopback, fsync off) with one database, for tests and local runs.

    Run as root, the server runs as the ``postgres`` system user (PostgreSQL refuses root), in a
    folder of its own under the system temp dir.

    Raises:
        FileNotFoundError: PostgreSQL is not installed (``apt-get install -y postgresql``).
        TimeoutError: it did not accept connections within 30 s.
    """

    def __init__(self, port: int | None = None, database: str = "catalogue") -> None:
        import tempfile

        bindir = _pg_bindir()
        self.port = port or free_port()
        self.database = database
        self.workdir = Path(tempfile.mkdtemp(prefix="designsearch-pg-"))
        self.user = "designsearch"
        run_as: dict = {}
        if os.geteuid() == 0:
            import pwd

            pw = pwd.getpwnam("postgres")
            os.chown(self.workdir, pw.pw_uid, pw.pw_gid)
            run_as = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        data = self.workdir / "data"
        subprocess.run([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", self.user, "-E", "UTF8",
                        "--no-sync"], check=True, capture_output=True, cwd=self.workdir, **run_as)
        self.proc = subprocess.Popen(
            [str(bindir / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(self.port),
             "-k", str(self.workdir), "-c", "fsync=off", "-c", "full_page_writes=off"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.workdir, **run_as)
        self._wait()

    def url(self, database: str | None = None) -> str:
        """SQLAlchemy URL ``postgresql+psycopg://designsearch@127.0.0.1:<port>/<database>``."""
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database or self.database}"

    def create_database(self, name: str) -> str:
        """Create another database; returns its SQLAlchemy URL.

        Raises:
            psycopg.OperationalError: the server does not accept connections (yet).
        """
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=self.user, dbname="postgres", autocommit=True,
                             connect_timeout=1) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def _wait(self) -> None:
        import psycopg

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited with code {self.proc.returncode}")
            try:
                self.create_database(self.database)
                return
            except psycopg.OperationalError:
                time.sleep(0.1)
        raise TimeoutError("postgres did not accept connections within 30 s")

    def stop(self) -> None:
        """Fast shutdown (SIGINT), then SIGKILL after 10 s; removes the cluster."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


def wait_serving(address: str, timeout_s: float = 120.0, service: str = "") -> None:
    """Block until the gRPC health check of ``address`` says SERVING.

    Raises:
        TimeoutError: not SERVING within ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                r = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1.0)
                if r.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    raise TimeoutError(f"{address} not SERVING after {timeout_s} s")


class Stack:
    """Redis plus the four services (and, with ``web``, the web page) as child processes
    (``python -m ...``) on local ports.

    Args:
        var_dir: folder for Redis data, the index, the catalogue and logs.
        ports: ``{"gateway", "segmenter", "embedder", "search", "web"}`` → port; missing = free port.
        env: extra environment variables for the services.
        web: also run the web page (``designsearch.web``), started once the gateway is SERVING.
        replicas: processes per service for ``segmenter``, ``embedder`` and ``gateway`` (default 1 each; the
            search service keeps one embedded index and the web page is one). Replica ``i`` > 1 of a service
            is the process ``<service>.<i>`` on a port of its own; the gateways get each group as one target
            (``ipv4:127.0.0.1:P1,127.0.0.1:P2``: round-robin and retry on the next replica, the policy of the
            headless Services in Kubernetes), the web page the gateways the same way. With more than one
            replica anywhere, every process gets a Prometheus ``/metrics`` port (:attr:`metrics_ports`).
    """

    #: Niceness of the segmenter and embedder processes (``cpu_nice``; the environment may override it): on
    #: shared cores the gateway's cached answers then do not wait behind segmentation and embedding.
    COMPUTE_NICE = 10

    #: Services that may run as several processes.
    SCALABLE = ("segmenter", "embedder", "gateway")

    MODULES = {"segmenter": "designsearch.services.segmenter", "embedder": "designsearch.services.embedder",
               "search": "designsearch.services.search", "gateway": "designsearch.gateway"}

    def __init__(self, var_dir: str | Path, ports: dict[str, int] | None = None, env: dict[str, str] | None = None,
                 web: bool = False, replicas: dict[str, int] | None = None) -> None:
        self.var_dir = Path(var_dir)
        replicas = replicas or {}
        bad = {k: v for k, v in replicas.items() if k not in self.SCALABLE or v < 1}
        if bad:
            raise ValueError(f"replicas: only {', '.join(self.SCALABLE)} may have several processes (>= 1); got {bad}")
        self.modules = {}
        for name, module in {**self.MODULES, **({"web": "designsearch.web"} if web else {})}.items():
            for i in range(1, replicas.get(name, 1) + 1):
                self.modules[name if i == 1 else f"{name}.{i}"] = module
        taken: set[int] = set()

        def distinct_port(given: int | None = None) -> int:  # free_port() twice may answer the same port
            port = given or free_port()
            while port in taken and not given:
                port = free_port()
            taken.add(port)
            return port

        self.ports = {name: distinct_port((ports or {}).get(name)) for name in self.modules}
        scaled = any(v > 1 for v in replicas.values())
        #: process name → its /metrics port (only when some service has several replicas)
        self.metrics_ports = {name: distinct_port() for name in self.modules if name != "web"} if scaled else {}
        self.extra_env = env or {}
        self.redis: RedisProcess | None = None
        self.procs: dict[str, subprocess.Popen] = {}
        self._restarts: dict[str, tuple[float, float, float]] = {}  # name → (back-off s, restart due, started at)

    def replicas_of(self, service: str) -> list[str]:
        """The process names of ``service`` (``["embedder", "embedder.2"]``)."""
        return [n for n in self.modules if n.split(".")[0] == service]

    def target(self, service: str) -> str:
        """The gRPC target of ``service``: ``127.0.0.1:P``, or ``ipv4:127.0.0.1:P1,127.0.0.1:P2`` for several."""
        ports = [self.ports[n] for n in self.replicas_of(service)]
        if len(ports) == 1:
            return f"127.0.0.1:{ports[0]}"
        return "ipv4:" + ",".join(f"127.0.0.1:{p}" for p in ports)

    @property
    def gateway_address(self) -> str:
        """The gateway target (:meth:`target`: every gateway replica)."""
        return self.target("gateway")

    @property
    def web_url(self) -> str:
        """``http://127.0.0.1:<web port>/`` (only with ``web=True``)."""
        return f"http://127.0.0.1:{self.ports['web']}/"

    def start(self, timeout_s: float = 180.0) -> None:
        """Start Redis and the services, wait until every one is SERVING.

        Raises:
            TimeoutError, RuntimeError: something did not come up (everything started is stopped).
        """
        try:
            self.redis = RedisProcess(self.var_dir / "redis", persist=True)
            (self.var_dir / "logs").mkdir(parents=True, exist_ok=True)
            env = dict(os.environ)
            p = self.ports
            env.update({
                "DESIGNSEARCH_SEGMENTER_PORT": str(p["segmenter"]),
                "DESIGNSEARCH_EMBEDDER_PORT": str(p["embedder"]),
                "DESIGNSEARCH_SEARCH_PORT": str(p["search"]),
                "DESIGNSEARCH_SEARCH_PATH": str(self.var_dir / "index"),
                "DESIGNSEARCH_SEARCH_SNAPSHOT_DIR": str(self.var_dir / "snapshots"),
                "DESIGNSEARCH_GATEWAY_PORT": str(p["gateway"]),
                "DESIGNSEARCH_GATEWAY_SEGMENTER_ADDRESS": self.target("segmenter"),
                "DESIGNSEARCH_GATEWAY_EMBEDDER_ADDRESS": self.target("embedder"),
                "DESIGNSEARCH_GATEWAY_SEARCH_ADDRESS": f"127.0.0.1:{p['search']}",
                "DESIGNSEARCH_GATEWAY_REDIS_URL": self.redis.url,
                "DESIGNSEARCH_GATEWAY_CATALOGUE_URL": f"sqlite:///{self.var_dir / 'catalogue.db'}",
                "DESIGNSEARCH_WEB_PORT": str(p.get("web", 0)),
                "DESIGNSEARCH_WEB_GATEWAY_ADDRESS": self.target("gateway"),
            })
            # internal calls authenticated even on one machine: a fresh token per stack, shared by all four
            token = secrets.token_hex(16)
            for name in ("SEGMENTER", "EMBEDDER", "SEARCH", "GATEWAY"):
                env.setdefault(f"DESIGNSEARCH_{name}_INTERNAL_TOKEN", token)
            # one machine: the compute services yield the CPU to the gateway (cached answers, merging)
            for name in ("SEGMENTER", "EMBEDDER"):
                env.setdefault(f"DESIGNSEARCH_{name}_CPU_NICE", str(self.COMPUTE_NICE))
            env.update(self.extra_env)
            self._env = env
            #: the internal service token the services were started with (for in-process probes and benchmarks)
            self.internal_token = env["DESIGNSEARCH_EMBEDDER_INTERNAL_TOKEN"]
            for name in self.modules:
                self._spawn(name)
            for name in self.modules:
                self._wait(name, timeout_s)
        except BaseException:
            self.stop()
            raise

    def _spawn(self, name: str) -> None:
        env = dict(self._env)
        service = name.split(".")[0].upper()
        env[f"DESIGNSEARCH_{service}_PORT"] = str(self.ports[name])  # replica i > 1: its own port
        if name in self.metrics_ports:
            env[f"DESIGNSEARCH_{service}_METRICS_PORT"] = str(self.metrics_ports[name])
        with open(self.var_dir / "logs" / f"{name}.log", "ab") as log:
            self.procs[name] = subprocess.Popen([sys.executable, "-m", self.modules[name]], env=env, stdout=log,
                                                stderr=subprocess.STDOUT)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` (default SIGKILL: no clean-up) to process ``name`` and wait until it is gone."""
        proc = self.procs[name]
        proc.send_signal(sig)
        proc.wait(30)

    def restart(self, name: str, timeout_s: float = 180.0) -> None:
        """Start process ``name`` again (same port) and wait until it is SERVING."""
        if self.procs[name].poll() is None:
            raise RuntimeError(f"{name} is still running")
        self._spawn(name)
        self._wait(name, timeout_s)

    def supervise(self, on_event=print, max_backoff_s: float = 30.0, healthy_s: float = 60.0) -> None:
        """Restart services that exited, with exponential back-off (1 s, 2 s, ... ``max_backoff_s``;
        reset once a service has run ``healthy_s``), reporting each event through ``on_event(str)``.
        Call it periodically (``designsearch up`` does, twice a second); it never blocks longer than
        one back-off step of a single service."""
        now = time.monotonic()
        state = self._restarts
        for name, proc in list(self.procs.items()):
            backoff, due, started = state.get(name, (1.0, 0.0, now))
            if proc.poll() is None:
                if now - started > healthy_s and backoff > 1.0:
                    state[name] = (1.0, 0.0, started)
                continue
            if due == 0.0:
                on_event(f"{name} exited with code {proc.returncode}; restarting in {backoff:.0f} s "
                         f"(log: {self.var_dir / 'logs' / (name + '.log')})")
                state[name] = (backoff, now + backoff, started)
                continue
            if now >= due:
                self._spawn(name)
                on_event(f"{name} restarted (pid {self.procs[name].pid})")
                state[name] = (min(backoff * 2, max_backoff_s), 0.0, time.monotonic())

    def _wait(self, name: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if self.procs[name].poll() is not None:
                tail = (self.var_dir / "logs" / f"{name}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{name} exited with code {self.procs[name].returncode}:\n{tail}")
            try:
                if name == "web":
                    _wait_http(self.web_url + "healthz", timeout_s=1.0)
                else:
                    wait_serving(f"127.0.0.1:{self.ports[name]}", timeout_s=1.0)
                return
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name} not SERVING after {timeout_s} s") from None

    def stop(self) -> None:
        """SIGTERM every service (the web page and the gateway first), wait for graceful exit, then stop Redis."""
        order = ["web", "gateway", "segmenter", "embedder", "search"]
        for name in sorted(self.procs, key=lambda n: order.index(n.split(".")[0])):
            proc = self.procs[name]
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self.redis:
            self.redis.stop()
