"""A loopback listener that counts connections: where a refused location or a followed redirect
would lead. A test asserts that nothing reached it."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator


class Listener:
    """Accepts and closes every connection on a free loopback port, counting them."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.connections += 1
            connection.close()


def running_listener() -> Iterator[Listener]:
    """A Listener for a fixture's life."""
    running = Listener()
    yield running
    running.socket.close()
