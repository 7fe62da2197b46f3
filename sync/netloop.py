"""One turn of paho's network loop on ``selectors`` (epoll on Linux) instead of select().

Why not ``Client.loop()``: paho waits in ``select.select()``, which cannot watch a file
descriptor numbered 1024 or more. A simulation worker hosting 150 gates had descriptors
past 1,300 (each link's socket, its ledger, paho's wake-up socket pair) and its links
failed with ``[Errno 9] Bad file descriptor`` in a connect-and-close loop (issue #14).
paho documents the external-loop calls this uses (``socket``, ``want_write``,
``loop_read``, ``loop_write``, ``loop_misc``); the link's single thread makes every paho
call, so paho's wake-up socket pair is not needed either, which halves the descriptors.
"""

from __future__ import annotations

import selectors
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode


class NetLoop:
    """``pump(client, timeout)`` does what ``client.loop(timeout)`` does, on epoll."""

    def __init__(self) -> None:
        self._sel = selectors.DefaultSelector()
        self._sock: Any = None

    def _watch(self, sock: Any, events: int) -> None:
        if sock is not self._sock:
            self.forget()
            self._sel.register(sock, events)
            self._sock = sock
        elif self._sel.get_key(sock).events != events:
            self._sel.modify(sock, events)

    def forget(self) -> None:
        """Stop watching the current socket (call before closing it)."""
        if self._sock is not None:
            try:
                self._sel.unregister(self._sock)
            except (KeyError, ValueError, OSError):
                # The socket was closed (fd -1 or reused): start over with a clean selector.
                self._sel.close()
                self._sel = selectors.DefaultSelector()
            self._sock = None

    def pump(self, client: mqtt.Client, timeout: float) -> MQTTErrorCode:
        sock = client.socket()
        if sock is None:
            self.forget()
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if client.want_write() else 0)
        try:
            self._watch(sock, events)
            # Bytes already decrypted inside an SSL socket do not wake epoll: read them now.
            pending = sock.pending() if hasattr(sock, "pending") else 0
            ready = self._sel.select(0 if pending else timeout)
        except (ValueError, OSError):
            self.forget()  # the socket went away under us: paho reports the loss below
            return MQTTErrorCode.MQTT_ERR_CONN_LOST
        mask = ready[0][1] if ready else 0
        if mask & selectors.EVENT_READ or pending:
            rc = client.loop_read()
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or client.socket() is None:
                return rc
        if mask & selectors.EVENT_WRITE or client.want_write():
            rc = client.loop_write()
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or client.socket() is None:
                return rc
        return client.loop_misc()

    def close(self) -> None:
        self.forget()
        self._sel.close()
