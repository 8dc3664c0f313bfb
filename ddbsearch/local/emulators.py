"""Start and stop the emulators the local stack is made of, on free loopback ports.

* moto's server (DynamoDB, DynamoDB Streams, SQS) runs in-process on a thread
  (:class:`MotoServer`); binding port 0 lets the kernel pick a free port, so
  there is no race between choosing a port and binding it.
* osmem-server (OpenSearch-compatible, in memory) runs as a child process
  (:func:`start_osmem`). It exits when its stdin closes or when the process
  that started it disappears (``--parent-pid``), so it can never outlive its
  owner, even after a SIGKILL.
"""

from __future__ import annotations

import contextlib
import socket
from dataclasses import dataclass
from typing import Any

from ddbsearch.errors import PrerequisiteError, UnreachableError

LOOPBACK = "127.0.0.1"
# The emulators are not in the operator install (`pip install ddbsearch`): they come
# with the `local` extra, and every "not installed" error says so in one line.
LOCAL_EXTRA_HINT = "pip install 'ddbsearch[local]'"


def port_accepts(port: int, host: str = LOOPBACK, timeout: float = 0.2) -> bool:
    """True if something accepts TCP connections on ``host:port``."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


@dataclass
class MotoServer:
    """A moto server (all services moto emulates) on a free loopback port, in this process."""

    _server: Any
    port: int

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @classmethod
    def start(cls, port: int = 0) -> MotoServer:
        try:
            from moto.server import ThreadedMotoServer
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise PrerequisiteError(
                f"moto server is not installed ({exc})",
                hint=LOCAL_EXTRA_HINT,
            ) from None
        server = ThreadedMotoServer(ip_address=LOOPBACK, port=port, verbose=False)
        server.start()
        _host, bound = server.get_host_and_port()
        return cls(server, int(bound))

    def stop(self) -> None:
        self._server.stop()
        # ThreadedMotoServer.stop() ends serve_forever but leaves the socket bound
        # until garbage collection; close it so the port is free right away.
        inner = getattr(self._server, "_server", None)
        if inner is not None:
            inner.server_close()


def start_osmem(*, startup_timeout: float = 30.0) -> Any:
    """Start osmem-server (English analysis only) and return the ``OsmemServer`` handle.

    Keep the handle: its stdin pipe is the server's lifeline; ``handle.close()``
    stops it.
    """
    try:
        from osmem_server import OsmemError, OsmemServer
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise PrerequisiteError(
            f"osmem-server is not installed ({exc})",
            hint=LOCAL_EXTRA_HINT,
        ) from None
    try:
        return OsmemServer.start(japanese=False, startup_timeout=startup_timeout)
    except OsmemError as exc:
        raise UnreachableError(f"osmem-server did not start: {exc}") from None
