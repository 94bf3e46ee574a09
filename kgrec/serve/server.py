"""How ``kgrec serve`` runs the app: uvicorn, with what uvicorn leaves open closed.

* **Host allow-list** (DNS rebinding): a page on another origin whose name resolves to 127.0.0.1 reaches
  the service through the browser, with its own name in the ``Host`` header. Only the names the service
  was started for answer (``127.0.0.1``, ``localhost``, ``::1``, ``--host`` when it is a name or an address
  other than the wildcard, and every ``--allow-host``); any other gets 400 (Starlette's
  ``TrustedHostMiddleware``, installed by :func:`kgrec.serve.app.create_app`).
* **Header deadline** (slow clients): uvicorn's HTTP/1.1 protocol has no deadline on a request's header
  section, so connections that send their headers a byte at a time stay open for ever.
  :class:`HeaderDeadlineProtocol` closes a connection whose next request's headers are not complete
  within :data:`HEADER_TIMEOUT` seconds (from the connection, or from the end of the previous response);
  the body has its own deadline in :class:`kgrec.serve.guard.Guard` (408).
* **Start-up**: the workspace's model, cohort and graph store are loaded *before* the socket is bound,
  so a workspace it cannot serve is one line and exit code 2 from the CLI's error boundary, not a
  traceback from inside the server.
"""

from __future__ import annotations

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT = 10.0  # seconds for a request's whole header section
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")
WILDCARDS = ("0.0.0.0", "::", "")


def allowed_hosts(host: str, extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The ``Host`` names the service answers: loopback names, ``host`` unless it is a wildcard, and ``extra``."""
    names = list(LOOPBACK_NAMES)
    if host not in WILDCARDS:
        names.append(host)
    names += [h.strip() for h in extra if h and h.strip()]
    return list(dict.fromkeys(names))


class HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on each request's header section (module docstring)."""

    header_timeout = HEADER_TIMEOUT

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline = None
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if getattr(self, "_deadline", None) is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_too_slow(self) -> None:
        self._deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():  # headers still incomplete
            self.transport.close()

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:  # a request's headers arrived whole
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request on this connection gets the same deadline

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)
