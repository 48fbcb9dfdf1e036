"""End-to-end fixtures: the real `orgservice` command in a subprocess, driven by the real
grpcurl binary and by `orgservice token`.

Every process is started in its own session (process group) and killed in teardown if
it is still running; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2
from grpc_health.v1 import health_pb2_grpc

from orgservice import devkeys
from tests.support.processes import free_port

GRPCURL = Path(sys.executable).parent / "grpcurl"
SERVICE = "orgs.v1.OrganizationService"
HEALTH_SERVICES = ("", SERVICE)

START_TIMEOUT = 30.0  # seconds until a started server answers health checks
STOP_TIMEOUT = 15.0  # seconds a signalled server may take to exit (grace is 2 s)
CALL_TIMEOUT = 15.0  # seconds for one grpcurl or `orgservice token` run
SHUTDOWN_GRACE = 2.0


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Polls `condition` until it holds; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def service_env(key_file: Path, **variables: str) -> dict[str, str]:
    """This environment without any ORGSERVICE_* setting, plus the given ones."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("ORGSERVICE_")}
    env["ORGSERVICE_DEV_KEY_FILE"] = str(key_file)
    env["ORGSERVICE_SHUTDOWN_GRACE"] = str(SHUTDOWN_GRACE)
    env.update(variables)
    return env


def orgservice(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = CALL_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Runs `orgservice ARGS` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "orgservice", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# -- grpcurl -------------------------------------------------------------------------------


def go_code_name(status: grpc.StatusCode) -> str:
    """The name grpcurl prints after `Code:` (Go's spelling, e.g. NotFound)."""
    return "".join(part.capitalize() for part in status.name.split("_"))


class GrpcurlError(Exception):
    """grpcurl exited non-zero; `code` is its `Code:` line (e.g. "NotFound")."""

    def __init__(self, exit_code: int, stderr: str) -> None:
        self.exit_code = exit_code
        self.stderr = stderr
        code = re.search(r"^\s*Code: (\w+)\s*$", stderr, re.MULTILINE)
        message = re.search(r"^\s*Message: (.*)$", stderr, re.MULTILINE)
        self.code = code.group(1) if code else ""
        self.message = message.group(1) if message else ""
        super().__init__(f"grpcurl exited {exit_code}: {stderr.strip()}")

    def is_status(self, status: grpc.StatusCode) -> bool:
        """grpcurl reports a status both in stderr and as exit code 64 + code."""
        return self.code == go_code_name(status) and self.exit_code == 64 + status.value[0]


def _grpcurl(port: int, options: list[str], *arguments: str) -> str:
    """`grpcurl -plaintext OPTIONS localhost:PORT ARGUMENTS`; its stdout."""
    command = [str(GRPCURL), "-plaintext", "-max-time", str(CALL_TIMEOUT), *options]
    result = subprocess.run(
        [*command, f"localhost:{port}", *arguments],
        capture_output=True,
        text=True,
        timeout=CALL_TIMEOUT + 5,
        check=False,
    )
    if result.returncode != 0:
        raise GrpcurlError(result.returncode, result.stderr)
    return result.stdout


def grpcurl(
    port: int, method: str, data: dict[str, Any] | None = None, token: str | None = None
) -> dict[str, Any]:
    """Calls `method` (short names are OrganizationService methods) and returns the
    response as JSON with default values included; raises GrpcurlError on failure."""
    options = ["-emit-defaults", "-d", json.dumps(data or {})]
    if token is not None:
        options += ["-H", f"authorization: Bearer {token}"]
    full_method = method if "/" in method else f"{SERVICE}/{method}"
    response: dict[str, Any] = json.loads(_grpcurl(port, options, full_method))
    return response


def grpcurl_failure(
    port: int,
    status: grpc.StatusCode,
    method: str,
    data: dict[str, Any] | None = None,
    token: str | None = None,
) -> GrpcurlError:
    """Runs a call that must fail with `status` and returns the error."""
    with pytest.raises(GrpcurlError) as raised:
        grpcurl(port, method, data, token)
    assert raised.value.is_status(status), raised.value
    return raised.value


def grpcurl_list(port: int) -> list[str]:
    return _grpcurl(port, [], "list").split()


# -- health ---------------------------------------------------------------------------------


class HealthProbe:
    """grpc.health.v1 checks over one channel (faster than a grpcurl per check)."""

    def __init__(self, port: int) -> None:
        self._channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self._stub = health_pb2_grpc.HealthStub(self._channel)

    def status(self, service: str = "") -> str:
        """SERVING / NOT_SERVING / …, or the gRPC code name when the check fails."""
        try:
            reply = self._stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
        except grpc.RpcError as error:
            return str(error.code().name)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))

    def all_are(self, status: str) -> bool:
        return all(self.status(service) == status for service in HEALTH_SERVICES)

    def close(self) -> None:
        self._channel.close()


# -- the service process ------------------------------------------------------------------


class ServiceExitedError(Exception):
    """The server process ended while a test waited for it."""


class ServiceProcess:
    """`orgservice serve --port PORT [--dev] ARGS` in `workdir`, output captured to files;
    `env` adds ORGSERVICE_* variables to a clean environment."""

    def __init__(
        self,
        workdir: Path,
        *args: str,
        port: int | None = None,
        env: dict[str, str] | None = None,
        dev: bool = True,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.port = free_port() if port is None else port
        self.key_file = workdir / ".keys" / "dev-key"
        self.env = service_env(self.key_file, **(env or {}))
        self.args = ["serve", "--port", str(self.port), *(["--dev"] if dev else []), *args]
        self.stdout_path = workdir / "stdout.log"
        self.stderr_path = workdir / "stderr.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def process(self) -> subprocess.Popen[bytes]:
        assert self._process is not None, "not started"
        return self._process

    @property
    def pid(self) -> int:
        return self.process.pid

    def start(self) -> ServiceProcess:
        with self.stdout_path.open("wb") as stdout, self.stderr_path.open("wb") as stderr:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "orgservice", *self.args],
                cwd=self.workdir,
                env=self.env,
                stdout=stdout,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # own process group: teardown reaches workers too
            )
        return self

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def _check_running(self) -> None:
        if self.process.poll() is not None:
            raise ServiceExitedError(
                f"orgservice exited with {self.process.returncode}; stderr:\n{self.stderr()}"
            )

    def wait_until_serving(
        self, timeout: float = START_TIMEOUT, port: int | None = None
    ) -> ServiceProcess:
        """Waits for SERVING on `port` (a plaintext port: the service's by default)."""
        probe = HealthProbe(self.port if port is None else port)
        try:

            def serving() -> bool:
                self._check_running()
                return probe.all_are("SERVING")

            wait_until(serving, timeout, f"orgservice on port {port or self.port} to be SERVING")
        finally:
            probe.close()
        return self

    def wait_for_stdout(self, pattern: str, count: int = 1) -> list[Any]:
        return self._wait_for(self.stdout, pattern, count)

    def wait_for_stderr(self, pattern: str, count: int = 1) -> list[Any]:
        return self._wait_for(self.stderr, pattern, count)

    def _wait_for(self, read: Callable[[], str], pattern: str, count: int) -> list[Any]:
        """Waits until `pattern` occurs `count` times; returns re.findall's matches."""
        matches: list[Any] = []

        def seen() -> bool:
            nonlocal matches
            self._check_running()
            matches = re.findall(pattern, read(), re.MULTILINE)
            return len(matches) >= count

        wait_until(seen, START_TIMEOUT, f"{count}x {pattern!r} in the server's output")
        return matches

    def stop(self, signum: signal.Signals = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        """Sends `signum` to the server (not its group) and returns its exit code."""
        self.process.send_signal(signum)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"orgservice did not exit within {timeout:.0f}s of {signum.name}")

    def kill(self) -> None:
        """Kills whatever is left of this server's process group (teardown)."""
        if self._process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):  # gone already
            os.killpg(self._process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(STOP_TIMEOUT)

    def close(self) -> None:
        """Stops the server gracefully if it still runs, then kills any leftovers."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(STOP_TIMEOUT)
        self.kill()

    # Calls against this server, with tokens minted by `orgservice token`.

    def token(self, subject: str, **claims: str) -> str:
        """`orgservice token --sub SUBJECT --email …` with this server's dev key."""
        options = [item for name, value in claims.items() for item in (f"--{name}", value)]
        result = orgservice("token", "--sub", subject, *options, env=self.env, cwd=self.workdir)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def mint(self, subject: str) -> str:
        """A token for `subject` signed here with this server's dev key: what `token()`
        returns, without starting a process."""
        return devkeys.mint_token(devkeys.load_or_create(self.key_file), subject=subject)

    def call(
        self, method: str, data: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        return grpcurl(self.port, method, data, token)

    def call_fails(
        self,
        status: grpc.StatusCode,
        method: str,
        data: dict[str, Any] | None = None,
        token: str | None = None,
    ) -> GrpcurlError:
        return grpcurl_failure(self.port, status, method, data, token)


StartService = Callable[..., ServiceProcess]


def health_command(service: ServiceProcess, port: int, *args: str) -> tuple[int, list[str]]:
    """`orgservice health --address 127.0.0.1:PORT ARGS`: exit code and stdout lines."""
    result = orgservice(
        "health", "--address", f"127.0.0.1:{port}", *args, env=service.env, cwd=service.workdir
    )
    return result.returncode, result.stdout.splitlines()


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[StartService]:
    """Starts servers for one test: `start_service(*serve_args, wait=True, **options)`
    (options as for ServiceProcess); all are stopped in teardown."""
    started: list[ServiceProcess] = []

    def start(*args: str, wait: bool = True, **options: Any) -> ServiceProcess:
        service = ServiceProcess(tmp_path / f"service-{len(started)}", *args, **options)
        started.append(service)
        service.start()
        return service.wait_until_serving() if wait else service

    yield start
    for service in started:
        service.close()
