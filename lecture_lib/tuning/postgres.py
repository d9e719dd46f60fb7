"""A local PostgreSQL server for the course's search across machines (``make db``).

``start_local_cluster()`` creates a cluster under ``.cache/postgres`` with Debian's binaries
(``initdb``, ``pg_ctl``) on the first call, starts it on a free port with a generated password
and returns its URL, ``postgresql://lecture:PASSWORD@127.0.0.1:PORT/optuna``; later calls start
it again (or just return the URL when it runs). ``stop_local_cluster()`` stops it. PostgreSQL
refuses to run as root: when we are root, the server runs as the ``postgres`` user (or
``nobody``). It listens on 127.0.0.1 only; to let other machines in, see the chapter.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["DEFAULT_FOLDER", "find_binaries", "start_local_cluster", "stop_local_cluster", "local_cluster_url"]

DEFAULT_FOLDER = Path(".cache") / "postgres"
USER, DATABASE = "lecture", "optuna"


def find_binaries() -> Path | None:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``: Debian's
    ``/usr/lib/postgresql/<version>/bin`` (newest first), else wherever ``PATH`` has them."""
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[4]), reverse=True)
    for pg_ctl in debian + [shutil.which("pg_ctl") or ""]:
        folder = Path(os.path.realpath(pg_ctl)).parent if pg_ctl else None
        if folder and all((folder / name).exists() for name in ("initdb", "pg_ctl", "postgres")):
            return folder
    return None


@dataclass
class _Cluster:
    data: str
    port: int
    password: str
    run_as: str | None

    @property
    def url(self) -> str:
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/{DATABASE}"


def _run_as() -> str | None:
    """Who runs the server: ourselves, or an unprivileged user when we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("PostgreSQL refuses to run as root and there is no 'postgres' or 'nobody' user: "
                       "create one (useradd postgres) or run make db as an ordinary user")


def _run(args: list, run_as: str | None, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    if run_as is not None:
        user = pwd.getpwnam(run_as)
        kwargs.update(user=user.pw_uid, group=user.pw_gid, extra_groups=[], cwd="/")
    return subprocess.run([str(a) for a in args], check=check, capture_output=True, text=True, **kwargs)


def _data_folder(folder: Path, run_as: str | None) -> Path:
    """``folder/data``, or a folder under /tmp when ``run_as`` cannot reach ``folder``
    (e.g. a checkout under /root)."""
    if run_as is None or _run(["test", "-x", folder.resolve()], run_as, check=False).returncode == 0:
        return folder.resolve() / "data"
    digest = hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:8]
    return Path(tempfile.gettempdir()) / f"lecture-postgres-{digest}" / "data"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _owned_folder(path: Path, run_as: str | None) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if run_as is not None:
        user = pwd.getpwnam(run_as)
        os.chown(path, user.pw_uid, user.pw_gid)


def _initdb(bin_dir: Path, cluster: _Cluster) -> None:
    data = Path(cluster.data)
    _owned_folder(data.parent, cluster.run_as)
    password_file = data.parent / "initdb.password"
    password_file.write_text(cluster.password + "\n")
    if cluster.run_as is not None:
        user = pwd.getpwnam(cluster.run_as)
        os.chown(password_file, user.pw_uid, user.pw_gid)
    password_file.chmod(0o600)
    try:
        _run([bin_dir / "initdb", "-D", data, "-U", USER, f"--pwfile={password_file}", "--auth=scram-sha-256",
              "--encoding=UTF8", "--locale=C"], cluster.run_as)
    finally:
        password_file.unlink()


def _state_file(folder: Path) -> Path:
    return folder / "cluster.json"


def _load(folder: Path) -> _Cluster | None:
    path = _state_file(folder)
    return _Cluster(**json.loads(path.read_text())) if path.exists() else None


def _save(folder: Path, cluster: _Cluster) -> None:
    path = _state_file(folder)
    path.write_text(json.dumps(asdict(cluster)))
    path.chmod(0o600)  # it holds the password


def _is_running(bin_dir: Path, cluster: _Cluster) -> bool:
    return _run([bin_dir / "pg_ctl", "-D", cluster.data, "status"], cluster.run_as, check=False).returncode == 0


def _create_database(cluster: _Cluster) -> None:
    import psycopg

    with psycopg.connect(cluster.url.rsplit("/", 1)[0] + "/postgres", autocommit=True, connect_timeout=10) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone() is None:
            conn.execute(f"CREATE DATABASE {DATABASE}")


def _binaries_or_error() -> Path:
    bin_dir = find_binaries()
    if bin_dir is None:
        raise FileNotFoundError("PostgreSQL's server binaries (initdb, pg_ctl, postgres) are missing: "
                                "apt-get install postgresql (make db does it when run as root)")
    return bin_dir


def start_local_cluster(folder: str | Path = DEFAULT_FOLDER) -> str:
    """Create (first time) and start the course's PostgreSQL cluster; return its URL."""
    bin_dir, folder = _binaries_or_error(), Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".gitignore").write_text("*\n")  # the cluster and its password never go into git
    cluster = _load(folder)
    if cluster is None or not (Path(cluster.data) / "PG_VERSION").exists():
        run_as = _run_as()
        cluster = _Cluster(str(_data_folder(folder, run_as)), 0, secrets.token_urlsafe(18), run_as)
        _initdb(bin_dir, cluster)
    if not _is_running(bin_dir, cluster):
        cluster.port = _free_port()
        log = Path(cluster.data).parent / "server.log"
        options = f"-p {cluster.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''"
        result = _run([bin_dir / "pg_ctl", "-D", cluster.data, "-l", log, "-o", options, "-w", "-t", "60", "start"],
                      cluster.run_as, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"pg_ctl could not start the cluster in {cluster.data}: {result.stdout}{result.stderr}"
                               f"; see {log}")
    _save(folder, cluster)
    _create_database(cluster)
    return cluster.url


def local_cluster_url(folder: str | Path = DEFAULT_FOLDER) -> str | None:
    """The URL of the course's cluster when it runs, else None."""
    cluster, bin_dir = _load(Path(folder)), find_binaries()
    return cluster.url if cluster and bin_dir and _is_running(bin_dir, cluster) else None


def stop_local_cluster(folder: str | Path = DEFAULT_FOLDER, delete: bool = False) -> bool:
    """Stop the course's cluster (its data stay for the next start, unless ``delete``); False
    if it was not running."""
    cluster, bin_dir = _load(Path(folder)), _binaries_or_error()
    running = cluster is not None and _is_running(bin_dir, cluster)
    if running:
        _run([bin_dir / "pg_ctl", "-D", cluster.data, "-m", "fast", "-w", "stop"], cluster.run_as)
    if delete and cluster is not None:
        shutil.rmtree(Path(cluster.data).parent, ignore_errors=True)
        _state_file(Path(folder)).unlink(missing_ok=True)
    return running
