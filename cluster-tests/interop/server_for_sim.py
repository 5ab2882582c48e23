#!/usr/bin/env python3
"""python-diameter 0.9.0 as a Diameter server (the SAE's side) for sae-sim and other initiators.

Listens on 127.0.0.1:PORT (PORT 0 picks a free port), accepts CER only from the peers named with
--peer (python-diameter answers others with 3010), serves the JSRC application and answers its
requests with DIAMETER_SUCCESS. Prints to stdout, one event a line, flushed:

    listening PORT
    received CER from HOST
    received DWR from HOST
    received DWA from HOST
    received DPR from HOST
    received request COMMAND from HOST
    closed HOST reason REASON

Runs until SIGTERM/SIGINT (or, with --stop-on-stdin-eof, the end of stdin); then it stops its
node (DPR to connected peers) and exits 0 after printing `stopped`.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
import threading

from diameter.message import constants
from diameter.node import Node
from diameter.node.application import SimpleThreadingApplication
from diameter.node.peer import (
    DISCONNECT_REASON_CER_REJECTED,
    DISCONNECT_REASON_CLEAN_DISCONNECT,
    DISCONNECT_REASON_DPR,
    DISCONNECT_REASON_DWA_TIMEOUT,
    DISCONNECT_REASON_GONE_AWAY,
    DISCONNECT_REASON_NODE_SHUTDOWN,
    DISCONNECT_REASON_SOCKET_FAIL,
    DISCONNECT_REASON_UNKNOWN,
)

from juniper_avps import APP_JSRC, VENDOR_JUNIPER, register_juniper_avps

REASONS = {
    DISCONNECT_REASON_DPR: "dpr",
    DISCONNECT_REASON_NODE_SHUTDOWN: "node-shutdown",
    DISCONNECT_REASON_CLEAN_DISCONNECT: "clean",
    DISCONNECT_REASON_SOCKET_FAIL: "socket-fail",
    DISCONNECT_REASON_GONE_AWAY: "gone-away",
    DISCONNECT_REASON_CER_REJECTED: "cer-rejected",
    DISCONNECT_REASON_DWA_TIMEOUT: "dwa-timeout",
}

_print_lock = threading.Lock()


def event(line: str) -> None:
    with _print_lock:
        print(line, flush=True)


def origin(message) -> str:
    found = message.find_avps((264, 0))
    if not found:
        return "?"
    value = found[0].value
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class ReportingNode(Node):
    """A python-diameter node that reports the base-protocol messages it receives."""

    def receive_cer(self, conn, message):
        event(f"received CER from {origin(message)}")
        super().receive_cer(conn, message)

    def receive_dwr(self, conn, message):
        event(f"received DWR from {origin(message)}")
        super().receive_dwr(conn, message)

    def receive_dwa(self, conn, message):
        event(f"received DWA from {origin(message)}")
        super().receive_dwa(conn, message)

    def receive_dpr(self, conn, message):
        event(f"received DPR from {origin(message)}")
        super().receive_dpr(conn, message)

    def remove_peer_connection(self, conn, disconnect_reason=DISCONNECT_REASON_UNKNOWN):
        if conn.ident in self.connections:
            host = conn.host_identity or f"{conn.ip}:{conn.port}"
            event(f"closed {host} reason {REASONS.get(disconnect_reason, disconnect_reason)}")
        super().remove_peer_connection(conn, disconnect_reason)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int, help="TCP port on 127.0.0.1; 0 picks a free one")
    parser.add_argument("--origin-host", default="server.test.realm")
    parser.add_argument("--realm", default="test.realm")
    parser.add_argument(
        "--peer",
        action="append",
        default=None,
        help="Origin-Host allowed to connect (repeatable; default sim.test.realm)",
    )
    parser.add_argument(
        "--stop-on-stdin-eof",
        action="store_true",
        help="also stop when stdin closes (for a parent process that may die without signalling)",
    )
    parser.add_argument(
        "--idle-secs", type=int, default=600, help="idle time before this server sends DWR"
    )
    args = parser.parse_args()
    peers = args.peer or ["sim.test.realm"]

    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    register_juniper_avps()

    # The listening socket is bound here (port 0 allowed) and handed to the node, which then
    # creates none of its own: python-diameter only binds when given a non-zero port.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.port))
    listener.listen(16)
    listener.setblocking(False)
    port = listener.getsockname()[1]

    node = ReportingNode(
        args.origin_host, args.realm, ip_addresses=["127.0.0.1"], vendor_ids=[VENDOR_JUNIPER]
    )
    node.wakeup_interval = 1
    node.idle_timeout = args.idle_secs
    node.tcp_sockets.append(listener)
    known = [node.add_peer(f"aaa://{host};transport=tcp", args.realm) for host in peers]

    def on_request(app, message):
        event(f"received request {message.header.command_code} from {origin(message)}")
        return app.generate_answer(message, result_code=constants.E_RESULT_CODE_DIAMETER_SUCCESS)

    app = SimpleThreadingApplication(APP_JSRC, is_auth_application=True, request_handler=on_request)
    node.add_application(app, known)
    node.start()
    event(f"listening {port}")

    done = threading.Event()

    def stop(_signum, _frame):
        done.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def watch_stdin():
        try:
            while sys.stdin.read(4096):
                pass
        except (OSError, ValueError):
            pass
        done.set()

    if args.stop_on_stdin_eof:
        threading.Thread(target=watch_stdin, daemon=True).start()
    while not done.wait(0.5):
        pass
    node.stop(wait_timeout=5)
    event("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
