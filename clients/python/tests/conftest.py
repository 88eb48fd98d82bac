"""A real reco server on a fresh PostgreSQL database for the client's tests.

scripts/test.sh runs these with RECO_BIN (the reco binary it built) and RECO_TEST_DATABASE_URL (an
admin URL on the PostgreSQL it found or started); both have local defaults.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from reco_client import RecoClient

ROOT = Path(__file__).resolve().parents[3]
API_KEY = "client-test-key"


def admin_url() -> str:
    return os.environ.get("RECO_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def psql(url: str, sql: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["psql", url, "-v", "ON_ERROR_STOP=1", "-Atc", sql],
        check=True,
        capture_output=True,
        text=True,
        **kwargs,
    )


class Server:
    def __init__(self, base_url: str, db_url: str) -> None:
        self.base_url = base_url
        self.db_url = db_url

    def client(self, **kwargs) -> RecoClient:
        kwargs.setdefault("api_key", API_KEY)
        kwargs.setdefault("timeout", 30.0)
        return RecoClient(self.base_url, **kwargs)


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    binary = os.environ.get("RECO_BIN", str(ROOT / "target" / "debug" / "reco"))
    name = "reco_pyclient_" + uuid.uuid4().hex[:12]
    psql(admin_url(), f"CREATE DATABASE {name}")
    db_url = with_database(admin_url(), name)
    env = dict(
        os.environ,
        RECO_DB__URL=db_url,
        RECO_HTTP__BIND="127.0.0.1:0",
        RECO_HTTP__API_KEY=API_KEY,
        RECO_HTTP__PROTECT_READS="true",
        # A statement waiting on a lock longer than this is cancelled: reco answers 503 with
        # Retry-After, which the retry test provokes on purpose.
        RECO_DB__STATEMENT_TIMEOUT="0.5",
        RECO_RECOMMEND__TUNING_BUDGET="0",
        RECO_LOG__LEVEL="warn",
    )
    env.pop("DATABASE_URL", None)
    env.pop("RECO_CONFIG", None)
    process = subprocess.Popen(
        [binary, "serve", "--no-demo"], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        first = process.stdout.readline()
        assert first.startswith("reco is listening on "), first
        base_url = first.removeprefix("reco is listening on ").strip()
        server = Server(base_url, db_url)
        client = server.client()
        deadline = time.monotonic() + 120
        while not client.ready():
            assert process.poll() is None, "reco exited"
            assert time.monotonic() < deadline, "reco never became ready"
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=60)
        psql(admin_url(), f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
