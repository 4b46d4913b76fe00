"""A TCP proxy in front of PostgreSQL that cuts one connection around a COMMIT.

Armed with `cut_before_commit()`, it drops the connection instead of forwarding the next
COMMIT (the server rolls the transaction back). Armed with `cut_after_commit()`, it forwards
the COMMIT, waits for the server's reply (so the transaction is committed), and drops the
connection instead of delivering the reply: the client cannot know the outcome.
"""

from __future__ import annotations

import select
import socket
import threading

_COMMIT = b"COMMIT"


class CuttingProxy:
    def __init__(self, target_port: int) -> None:
        self._target = ("127.0.0.1", target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._armed: str | None = None
        self.cuts = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_before_commit(self) -> None:
        self._armed = "before"

    def cut_after_commit(self) -> None:
        self._armed = "after"

    def close(self) -> None:
        self._stop.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _address = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._target)
            threading.Thread(target=self._relay, args=(client, server), daemon=True).start()

    def _take_cut(self, mode: str) -> bool:
        with self._lock:
            if self._armed != mode:
                return False
            self._armed = None
            self.cuts += 1
            return True

    def _relay(self, client: socket.socket, server: socket.socket) -> None:
        awaiting_commit_reply = False
        with client, server:
            while not self._stop.is_set():
                readable, _, _ = select.select([client, server], [], [], 0.2)
                for source in readable:
                    data = source.recv(65536)
                    if not data:
                        return
                    if source is client:
                        if _COMMIT in data and self._take_cut("before"):
                            return
                        if _COMMIT in data and self._armed == "after":
                            awaiting_commit_reply = True
                        server.sendall(data)
                    elif awaiting_commit_reply and self._take_cut("after"):
                        return
                    else:
                        client.sendall(data)
