"""The command line against a test stand-in for the daemon (tests/test_apiclient.py).

``main`` runs its own event loop, so the stand-in serves from a thread of its own. The
stand-in is not the daemon; the command line's tests against the real daemon come with it.
"""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from ccdaemon import cli
from ccdaemon.apiclient import Client
from ccdaemon.daemon import serve
from tests.test_apiclient import StandIn, serving

if TYPE_CHECKING:
    from collections.abc import Iterator

COMMANDS = ["serve", "launch", "build", "stop", "ps", "logs", "wait", "gc", "health"]


@pytest.fixture
def standin() -> StandIn:
    return StandIn()


@pytest.fixture
def sock(standin: StandIn, tmp_path: Path) -> Iterator[str]:
    """The socket path of the stand-in, served from a thread until the test ends."""
    path = tmp_path / "ccdaemon.sock"
    ready = threading.Event()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def run() -> None:
        async with serving(standin, path):
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),))
    thread.start()
    assert ready.wait(10)
    yield str(path)
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)
    loop.close()


def run(capsys: pytest.CaptureFixture[str], sock: str, *argv: str) -> tuple[int, str, str]:
    """Run ``ccdaemon --socket SOCK ARGV...``; its status, stdout and stderr."""
    status = cli.main(["--socket", sock, *argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_ps_prints_an_aligned_table(capsys: pytest.CaptureFixture[str], sock: str) -> None:
    status, out, err = run(capsys, sock, "ps")
    assert (status, err) == (0, "")
    header, *rows = out.splitlines()
    assert header.split() == ["CCID", "CONTAINER", "STATE", "EXIT", "STARTED"]
    assert [row.split()[0] for row in rows] == ["mycc:abc123", "org/cc:1.0", "other:def456"]
    for column in ("CONTAINER", "STATE", "EXIT", "STARTED"):
        start = header.index(column)
        assert all(row[start - 1] == " " and row[start] != " " for row in rows), column
    assert rows[2].split()[2:] == ["exited", "2", "2026-11-28", "10:00:00", "UTC"]
    assert rows[0].split()[3] == "-"


def test_ps_json_and_state_filter(
    capsys: pytest.CaptureFixture[str], sock: str, standin: StandIn
) -> None:
    # --socket is accepted after the command name as well.
    status = cli.main(["ps", "--state", "running", "--json", "--socket", sock])
    listed = orjson.loads(capsys.readouterr().out)
    assert status == 0
    assert [cc["ccid"] for cc in listed] == ["mycc:abc123", "org/cc:1.0"]
    assert standin.seen[-1][1] == "/v1/chaincodes?state=running"


def test_launch_prints_progress_to_stderr(
    capsys: pytest.CaptureFixture[str], sock: str, standin: StandIn, tmp_path: Path
) -> None:
    package = tmp_path / "mycc.tar.gz"
    package.write_bytes(b"\x1f\x8b package bytes")
    status, out, err = run(
        capsys,
        sock,
        "launch",
        "new:1",
        "--type",
        "golang",
        "--peer-address",
        "peer0:7052",
        "--mspid",
        "Org1MSP",
        "--package",
        str(package),
    )
    assert status == 0
    assert err.splitlines() == standin.build_log
    assert "launched   new:1" in out
    assert "image      dev-peer0-new-1-0123abcd (built)" in out
    assert "timings    0.30 s (queue 0.01, create 0.05, start 0.20)" in out
    assert standin.bodies[-1] == {
        "ccid": "new:1",
        "type": "golang",
        "peer_address": "peer0:7052",
        "mspid": "Org1MSP",
        "package": base64.b64encode(package.read_bytes()).decode(),
    }


def test_launch_json_with_tls_files(
    capsys: pytest.CaptureFixture[str], sock: str, standin: StandIn, tmp_path: Path
) -> None:
    for name in ("cert", "key", "root"):
        (tmp_path / name).write_text(f"-----BEGIN {name}-----\n")
    tls = ["--tls-cert", str(tmp_path / "cert"), "--tls-key", str(tmp_path / "key")]
    tls += ["--tls-root", str(tmp_path / "root")]
    status, out, err = run(
        capsys, sock, "launch", "mycc:abc123", "--type", "node", "--peer-address", "p:1", *tls
    )
    assert (status, err) == (0, "")
    assert "state      running" in out
    assert standin.bodies[-1]["tls"] == {
        "enabled": True,
        "client_cert": "-----BEGIN cert-----\n",
        "client_key": "-----BEGIN key-----\n",
        "root_cert": "-----BEGIN root-----\n",
    }
    status, out, _ = run(
        capsys, sock, "launch", "mycc:abc123", "--type", "node", "--peer-address", "p:1",
        "--no-tls", "--json",
    )  # fmt: skip
    assert orjson.loads(out)["chaincode"]["ccid"] == "mycc:abc123"
    assert standin.bodies[-1]["tls"] == {"enabled": False}


def test_build_failure_prints_the_error_and_the_log_tail(
    capsys: pytest.CaptureFixture[str], sock: str, standin: StandIn, tmp_path: Path
) -> None:
    standin.build_fails = True
    package = tmp_path / "p.tgz"
    package.write_bytes(b"x")
    status, out, err = run(capsys, sock, "build", "mycc:abc123", "--package", str(package))
    assert (status, out) == (1, "")
    assert err.splitlines() == [
        *standin.build_log,
        "ccdaemon: build_failed: the image build failed: exit 2",
        "  Step 2/2 : RUN build",
    ]


def test_build(
    capsys: pytest.CaptureFixture[str], sock: str, standin: StandIn, tmp_path: Path
) -> None:
    package = tmp_path / "p.tgz"
    package.write_bytes(b"x")
    status, out, _ = run(capsys, sock, "build", "mycc:abc123", "--package", str(package))
    assert status == 0
    assert out == "image dev-peer0-mycc-abc123: built (1.25 s)\n"
    assert standin.bodies[-1] == {"ccid": "mycc:abc123", "package": "eA=="}


def test_refusal_exits_1_with_one_line(capsys: pytest.CaptureFixture[str], sock: str) -> None:
    status, out, err = run(capsys, sock, "stop", "gone:1")
    assert (status, out) == (1, "")
    assert err == "ccdaemon: unknown_chaincode: no managed chaincode gone:1\n"


def test_stop(capsys: pytest.CaptureFixture[str], sock: str, standin: StandIn) -> None:
    status, out, _ = run(capsys, sock, "stop", "mycc:abc123", "--timeout", "3", "--dontremove")
    assert status == 0
    assert out == "stopped mycc:abc123: dev-peer0-mycc-abc123 stopped (container kept)\n"
    assert standin.seen[-1][1] == "/v1/chaincodes/mycc%3Aabc123?timeout=3&dontremove=true"
    status, out, _ = run(capsys, sock, "stop", "other:def456", "--json")
    assert orjson.loads(out)["state"] == "stopped"


def test_logs(capsys: pytest.CaptureFixture[str], sock: str, standin: StandIn) -> None:
    status, out, _ = run(capsys, sock, "logs", "-f", "--tail", "10", "mycc:abc123")
    assert status == 0
    assert out.splitlines() == standin.log_lines
    assert standin.seen[-1][1].endswith("/logs?follow=true&tail=10&timestamps=false")


def test_wait_prints_the_exit_code_and_succeeds(
    capsys: pytest.CaptureFixture[str], sock: str
) -> None:
    assert run(capsys, sock, "wait", "other:def456") == (0, "2\n", "")
    status, out, _ = run(capsys, sock, "wait", "mycc:abc123", "--json")
    assert (status, orjson.loads(out)) == (0, {"ccid": "mycc:abc123", "exit_code": 0})


def test_gc(capsys: pytest.CaptureFixture[str], sock: str) -> None:
    status, out, _ = run(capsys, sock, "gc", "--dry-run")
    assert status == 0
    assert out.splitlines() == [
        "would remove container dev-peer0-old-1",
        "would remove image dev-old-img",
        "kept build cache ccdaemon-default-gocache-0123456789ab (remove with --caches)",
    ]
    status, out, _ = run(capsys, sock, "gc", "--caches")
    assert out.splitlines()[-1] == "removed build cache ccdaemon-default-gocache-0123456789ab"
    status, out, _ = run(capsys, sock, "gc", "--json")
    assert orjson.loads(out)["dry_run"] is False


def test_health(capsys: pytest.CaptureFixture[str], sock: str, standin: StandIn) -> None:
    status, out, _ = run(capsys, sock, "health")
    assert status == 0
    assert "engine      docker 26.1.4, API 1.45" in out
    assert "chaincodes  2 running, 3 managed" in out
    status, out, _ = run(capsys, sock, "health", "--json")
    assert orjson.loads(out)["engine"]["kind"] == "docker"
    standin.engine_up = False
    status, out, err = run(capsys, sock, "health")
    assert (status, out) == (1, "")
    assert err.startswith("ccdaemon: engine_unavailable: engine at unix:///run/docker.sock")


def test_unreachable_daemon_exits_3(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "absent.sock"
    status, out, err = run(capsys, str(path), "ps")
    assert (status, out) == (3, "")
    assert err == (
        f"ccdaemon: daemon_unreachable: no daemon socket at {path} — is ccdaemon running? "
        "(CCDAEMON_SOCKET / --socket)\n"
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["ps", "--bogus"],
        ["launch", "mycc:1", "--type", "golang"],
        ["launch", "mycc:1", "--type", "golang", "--peer-address", "p:1", "--no-tls",
         "--tls-cert", "/dev/null"],
        ["launch", "mycc:1", "--type", "golang", "--peer-address", "p:1",
         "--tls-cert", "/dev/null"],
        ["build", "mycc:1", "--package", "/nonexistent/package.tgz"],
        ["logs", "mycc:1", "--tail", "some"],
        ["--api-cert", "/dev/null", "health"],
        [],
    ],
)  # fmt: skip
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        cli.main(argv)
    assert raised.value.code == 2
    assert "usage: ccdaemon" in capsys.readouterr().err


def test_unreadable_package_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["build", "mycc:1", "--package", "/nonexistent/package.tgz"])
    assert "cannot read /nonexistent/package.tgz: No such file" in capsys.readouterr().err


def test_help_of_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        cli.main(["--help"])
    top = capsys.readouterr().out
    assert raised.value.code == 0
    assert "3    the daemon cannot be reached" in top
    for command in [*COMMANDS, "engine-check"]:
        assert f"    {command} " in top, command
        with pytest.raises(SystemExit) as raised:
            cli.main([command, "--help"])
        text = capsys.readouterr().out
        assert raised.value.code == 0
        assert f"example:\n  ccdaemon {command}" in text, command
        assert "exit status:" in text, command
    assert cli.__doc__ is not None
    assert "3  the daemon cannot be reached" in cli.__doc__


def test_serve_passes_the_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[tuple[Path | None, bool]] = []

    def fake(config: Path | None, *, check_config: bool) -> int:
        calls.append((config, check_config))
        return 7

    monkeypatch.setattr(serve, "main", fake)
    monkeypatch.delenv("CCDAEMON_CONFIG", raising=False)
    monkeypatch.setattr(cli, "DEFAULT_CONFIG", tmp_path / "absent.toml")
    assert cli.main(["serve"]) == 7
    (tmp_path / "present.toml").touch()
    monkeypatch.setattr(cli, "DEFAULT_CONFIG", tmp_path / "present.toml")
    cli.main(["serve"])
    monkeypatch.setenv("CCDAEMON_CONFIG", "/etc/from-env.toml")
    cli.main(["serve", "--check-config"])
    cli.main(["serve", "--config", "/etc/given.toml"])
    assert calls == [
        (None, False),
        (tmp_path / "present.toml", False),
        (Path("/etc/from-env.toml"), True),
        (Path("/etc/given.toml"), False),
    ]


def test_interrupt_exits_130(monkeypatch: pytest.MonkeyPatch, sock: str) -> None:
    def interrupted(*_: Any, **__: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Client, "list", interrupted)
    assert cli.main(["--socket", sock, "ps"]) == 130


def test_client_commands_do_not_load_the_server(tmp_path: Path) -> None:
    code = (
        "import sys; from ccdaemon.cli import main; "
        f"status = main(['--socket', {str(tmp_path / 'absent.sock')!r}, 'ps']); "
        "print(status, sorted(m for m in sys.modules if m.startswith('ccdaemon.daemon')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout == "3 []\n"
