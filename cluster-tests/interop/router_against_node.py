#!/usr/bin/env python3
"""python-diameter 0.9.0 as a JSRC router: one subscriber's whole session against a sae-node.

The calling test drives the script through stdin and reads what it saw from stdout, one line
per event, `TAG` or `TAG {json}`, flushed; diagnostics go to stderr:

    CEA {...}            the node's CEA (after CER)
    SRQ {...}            the node's first request on the connection, answered with SRR 2001
    AAA {...}            answer to the login AAR (Juniper-Request-Type 1)
    CONFIRM {...}        answer to the confirm AAR (Juniper-Request-Type 2)
    LOGGED-IN SESSION-ID then waits for `LOGOUT` on stdin; meanwhile the node may send PPRs:
    PPR {...}            a PPR as received, printed before its PPA goes out (2001 when it is
                         well formed for this session, else 5012 with an Error-Message)
    ACA {...}            answer to ACR (START, with a Juniper-Acct-Record)
    STA {...}            answer to STR (Termination-Cause 1, with the final Juniper-Acct-Record)
    LOGGED-OUT           then waits for `DISCONNECT` on stdin
    SUMMARY {...}        after DPR/DPA: what the node sent, in order; "error" when a step failed

The script judges only what it must to act like a router (which PPA to send); everything else
it reports for the test to check. It exits non-zero when a step could not run (no CEA, no
answer, a timeout, an unexpected stdin line).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import select
import sys
import threading
import time

from diameter.message import Message, constants
from diameter.message.avp import Avp
from diameter.message.commands import (
    AaRequest,
    AccountingRequest,
    SessionTerminationRequest,
)
from diameter.node import Node
from diameter.node.application import SimpleThreadingApplication

from juniper_avps import (
    APP_JSRC,
    LAST_ORIGIN_HOST,
    POLICY_INSTALL,
    REQUEST_TYPE,
    VENDOR_JUNIPER,
    acct_record,
    answer_to,
    first_value,
    policy_installs,
    policy_removes,
    register_juniper_avps,
    text,
)

CMD_SESSION_RESYNC = 277
CMD_PUSH_PROFILE = 288
AVP_SESSION_ID = 263
AVP_ORIGIN_HOST = 264
AVP_ORIGIN_REALM = 296
AVP_DESTINATION_HOST = 293
AVP_DESTINATION_REALM = 283
AVP_AUTH_APPLICATION_ID = 258
AVP_RESULT_CODE = 268
AVP_ERROR_MESSAGE = 281
AVP_USER_NAME = 1
AVP_ACCOUNTING_RECORD_TYPE = 480
AVP_ACCOUNTING_RECORD_NUMBER = 485

_out_lock = threading.Lock()


def emit(tag: str, payload=None) -> None:
    """One stdout line: `TAG`, `TAG text` or `TAG {json}`."""
    if payload is None:
        line = tag
    elif isinstance(payload, str):
        line = f"{tag} {payload}"
    else:
        line = f"{tag} {json.dumps(payload)}"
    with _out_lock:
        print(line, flush=True)


def log(text_: str) -> None:
    print(f"[router] {text_}", file=sys.stderr, flush=True)


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


_stdin_pending = bytearray()


def read_command(timeout: float, expected: str) -> None:
    """Waits (at most `timeout` seconds) for the next line on stdin, which must be `expected`.
    Reads the file descriptor directly, so that select() never misses buffered lines."""
    deadline = time.monotonic() + timeout
    while b"\n" not in _stdin_pending:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no `{expected}` on stdin within {timeout}s")
        ready, _, _ = select.select([sys.stdin.fileno()], [], [], remaining)
        if ready:
            chunk = os.read(sys.stdin.fileno(), 4096)
            if not chunk:
                raise EOFError(f"stdin closed before `{expected}`")
            _stdin_pending.extend(chunk)
    end = _stdin_pending.index(b"\n")
    line = bytes(_stdin_pending[:end]).decode("utf-8", "replace").strip()
    del _stdin_pending[: end + 1]
    if line != expected:
        raise ValueError(f"expected `{expected}` on stdin, got {line!r}")


class RouterNode(Node):
    """A python-diameter node that records every message it receives and sends, in order."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen_lock = threading.Lock()
        self.received: list[list] = []
        self.sent: list[list] = []
        self.cea: Message | None = None
        self.dpa: Message | None = None

    def _receive_message(self, conn, msg):
        with self.seen_lock:
            self.received.append([msg.header.command_code, msg.header.is_request])
        super()._receive_message(conn, msg)

    def send_message(self, conn, message):
        with self.seen_lock:
            self.sent.append([message.header.command_code, message.header.is_request])
        super().send_message(conn, message)

    def has_sent(self, command_code: int, is_request: bool) -> bool:
        with self.seen_lock:
            return [command_code, is_request] in self.sent

    def receive_cea(self, conn, message):
        with self.seen_lock:
            self.cea = message
        super().receive_cea(conn, message)

    def receive_dpa(self, conn, message):
        with self.seen_lock:
            self.dpa = message
        super().receive_dpa(conn, message)


def header(msg: Message) -> dict:
    return {
        "command_code": msg.header.command_code,
        "application_id": msg.header.application_id,
        "is_request": msg.header.is_request,
        "proxiable": msg.header.is_proxyable,
        "e_bit": msg.header.is_error,
    }


def describe_answer(request: Message, answer: Message) -> dict:
    d = header(answer)
    d.update(
        {
            "hop_by_hop_matches": answer.header.hop_by_hop_identifier
            == request.header.hop_by_hop_identifier,
            "end_to_end_matches": answer.header.end_to_end_identifier
            == request.header.end_to_end_identifier,
            "request_session_id": text(first_value(request, AVP_SESSION_ID)),
            "session_id": text(first_value(answer, AVP_SESSION_ID)),
            "first_avp": [answer.avps[0].code, answer.avps[0].vendor_id] if answer.avps else None,
            "result_code": first_value(answer, AVP_RESULT_CODE),
            "origin_host": text(first_value(answer, AVP_ORIGIN_HOST)),
            "origin_realm": text(first_value(answer, AVP_ORIGIN_REALM)),
            "auth_application_id": first_value(answer, AVP_AUTH_APPLICATION_ID),
            "user_name": text(first_value(answer, AVP_USER_NAME)),
            "error_message": text(first_value(answer, AVP_ERROR_MESSAGE)),
            "accounting_record_type": first_value(answer, AVP_ACCOUNTING_RECORD_TYPE),
            "accounting_record_number": first_value(answer, AVP_ACCOUNTING_RECORD_NUMBER),
            "policy_installs": policy_installs(answer),
        }
    )
    return d


def describe_request(msg: Message) -> dict:
    """A request from the node, as python-diameter decoded it."""
    d = header(msg)
    d.update(
        {
            "first_avp": [msg.avps[0].code, msg.avps[0].vendor_id] if msg.avps else None,
            "session_id": text(first_value(msg, AVP_SESSION_ID)),
            "origin_host": text(first_value(msg, AVP_ORIGIN_HOST)),
            "origin_realm": text(first_value(msg, AVP_ORIGIN_REALM)),
            "destination_host": text(first_value(msg, AVP_DESTINATION_HOST)),
            "destination_realm": text(first_value(msg, AVP_DESTINATION_REALM)),
            "auth_application_id": first_value(msg, AVP_AUTH_APPLICATION_ID),
            "user_name": text(first_value(msg, AVP_USER_NAME)),
            "last_origin_host": [
                text(a.value) for a in msg.find_avps((LAST_ORIGIN_HOST, VENDOR_JUNIPER))
            ],
            "policy_installs": policy_installs(msg),
            "policy_removes": policy_removes(msg),
        }
    )
    return d


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="the node's Diameter port")
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--node-host", default="sae.test.realm", help="the node's Origin-Host")
    parser.add_argument("--origin-host", default="router1.test.realm")
    parser.add_argument("--realm", default="test.realm")
    parser.add_argument("--user-name", default="alice@isp.example")
    parser.add_argument("--framed-ip", default="192.0.2.10")
    parser.add_argument("--nas-port-id", default="ge-1/0/0.100")
    parser.add_argument(
        "--accounted-policy",
        default="gold-policy",
        help="the policy the ACR and STR report usage for",
    )
    parser.add_argument(
        "--stdin-timeout", type=float, default=120, help="how long to wait for each command"
    )
    args = parser.parse_args()

    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    register_juniper_avps()

    summary: dict = {"steps": []}
    node = RouterNode(args.origin_host, args.realm, vendor_ids=[VENDOR_JUNIPER])
    node.wakeup_interval = 1
    peer = node.add_peer(
        f"aaa://{args.node_host}:{args.port};transport=tcp",
        args.realm,
        ip_addresses=[args.address],
        is_persistent=True,
    )
    # The node's Tw drives the watchdog; python-diameter only answers. Never reconnect behind
    # the test's back.
    peer.idle_timeout = 600
    peer.dwa_timeout = 5
    peer.reconnect_wait = 3600

    state_lock = threading.Lock()
    session: dict = {"id": None}
    requests_seen: list[dict] = []

    def on_request(app, message):
        d = describe_request(message)
        with state_lock:
            requests_seen.append(d)
            current = session["id"]
        code = message.header.command_code
        if code == CMD_SESSION_RESYNC:
            # Nothing to replay: this router has no session yet.
            emit("SRQ", d)
            return answer_to(
                message,
                constants.E_RESULT_CODE_DIAMETER_SUCCESS,
                args.origin_host,
                args.realm,
                auth_application_id=APP_JSRC,
            )
        if code == CMD_PUSH_PROFILE:
            problems = []
            if d["session_id"] != current:
                problems.append(f"Session-Id {d['session_id']!r} is not {current!r}")
            if d["destination_host"] != args.origin_host:
                problems.append(f"Destination-Host {d['destination_host']!r}")
            installs = message.find_avps((POLICY_INSTALL, VENDOR_JUNIPER))
            if not installs and not d["policy_removes"]:
                problems.append("neither Juniper-Policy-Install nor Juniper-Policy-Remove")
            for p in d["policy_installs"]:
                if len(p["policy_name"]) != 1 or not p["policy_name"][0]:
                    problems.append(f"Juniper-Policy-Install without one Policy-Name: {p}")
            d["answered"] = 2001 if not problems else 5012
            d["problems"] = problems
            emit("PPR", d)
            if problems:
                return answer_to(
                    message,
                    constants.E_RESULT_CODE_DIAMETER_UNABLE_TO_COMPLY,
                    args.origin_host,
                    args.realm,
                    error_message="; ".join(problems),
                )
            return answer_to(
                message, constants.E_RESULT_CODE_DIAMETER_SUCCESS, args.origin_host, args.realm
            )
        emit("UNEXPECTED", d)
        return answer_to(
            message,
            constants.E_RESULT_CODE_DIAMETER_UNABLE_TO_COMPLY,
            args.origin_host,
            args.realm,
            error_message="unexpected request",
        )

    app = SimpleThreadingApplication(APP_JSRC, is_auth_application=True, request_handler=on_request)
    node.add_application(app, [peer])

    def aar(session_id: str, request_type: int) -> AaRequest:
        m = AaRequest()
        m.header.is_proxyable = True
        m.header.application_id = APP_JSRC
        m.session_id = session_id
        m.auth_application_id = APP_JSRC
        m.origin_host = args.origin_host.encode()
        m.origin_realm = args.realm.encode()
        m.destination_realm = args.realm.encode()
        m.user_name = args.user_name
        m.framed_ip_address = bytes(int(o) for o in args.framed_ip.split("."))
        m.nas_port_id = args.nas_port_id
        m.append_avp(Avp.new(REQUEST_TYPE, VENDOR_JUNIPER, value=request_type))
        return m

    def exchange(tag: str, request: Message) -> dict:
        answer = app.send_request(request, timeout=10)
        d = describe_answer(request, answer)
        emit(tag, d)
        summary["steps"].append(tag.lower())
        return d

    node.start()
    stopped = False
    try:
        app.wait_for_ready(timeout=10)
        wait_until(lambda: node.cea is not None, 5, "the CEA to be recorded")
        emit(
            "CEA",
            {
                "result_code": first_value(node.cea, AVP_RESULT_CODE),
                "origin_host": text(first_value(node.cea, AVP_ORIGIN_HOST)),
            },
        )
        # The node's SRQ comes first; the login waits until its SRR is on the way.
        wait_until(
            lambda: node.has_sent(CMD_SESSION_RESYNC, False), 10, "the SRR to the node's SRQ"
        )
        summary["steps"].append("srq-srr")

        session_id = node.session_generator.next_id()
        with state_lock:
            session["id"] = session_id
        exchange("AAA", aar(session_id, 1))
        exchange("CONFIRM", aar(session_id, 2))
        emit("LOGGED-IN", session_id)

        # The test activates a service now (PPR, answered by on_request), then says LOGOUT.
        read_command(args.stdin_timeout, "LOGOUT")

        acr = AccountingRequest()
        acr.header.is_proxyable = True
        acr.header.application_id = APP_JSRC
        acr.session_id = session_id
        acr.origin_host = args.origin_host.encode()
        acr.origin_realm = args.realm.encode()
        acr.destination_realm = args.realm.encode()
        acr.accounting_record_type = constants.E_ACCOUNTING_RECORD_TYPE_START_RECORD
        acr.accounting_record_number = 0
        acr.user_name = args.user_name
        acr.append_avp(Avp.new(AVP_AUTH_APPLICATION_ID, value=APP_JSRC))
        acr.append_avp(
            acct_record(
                args.accounted_policy,
                input_octets=0,
                output_octets=0,
                input_packets=0,
                output_packets=0,
            )
        )
        exchange("ACA", acr)

        str_ = SessionTerminationRequest()
        str_.header.is_proxyable = True
        str_.header.application_id = APP_JSRC
        str_.session_id = session_id
        str_.origin_host = args.origin_host.encode()
        str_.origin_realm = args.realm.encode()
        str_.destination_realm = args.realm.encode()
        str_.auth_application_id = APP_JSRC
        str_.termination_cause = constants.E_TERMINATION_CAUSE_DIAMETER_LOGOUT
        str_.user_name = args.user_name
        str_.append_avp(
            acct_record(
                args.accounted_policy,
                input_octets=1_234_567,
                output_octets=7_654_321,
                input_packets=1_000,
                output_packets=2_000,
            )
        )
        exchange("STA", str_)
        emit("LOGGED-OUT")

        # The test checks the node while the connection is still up, then says DISCONNECT.
        read_command(args.stdin_timeout, "DISCONNECT")
        stopped = True
        node.stop(wait_timeout=10)
        summary["disconnect"] = {
            "dpa_result_code": first_value(node.dpa, AVP_RESULT_CODE) if node.dpa else None,
            "dpa_origin_host": text(first_value(node.dpa, AVP_ORIGIN_HOST)) if node.dpa else None,
            "connections_left": len(node.connections),
        }
        summary["steps"].append("dpr-dpa")
        status = 0
    except Exception as exc:  # report what was reached, then fail
        summary["error"] = f"{type(exc).__name__}: {exc}"
        status = 1
    finally:
        if not stopped:
            try:
                node.stop(wait_timeout=2, force=True)
            except Exception as exc:
                log(f"stop failed: {exc}")
    with state_lock:
        summary["requests_from_node"] = list(requests_seen)
    with node.seen_lock:
        summary["received_order"] = list(node.received)
        summary["sent_order"] = list(node.sent)
    emit("SUMMARY", summary)
    return status


if __name__ == "__main__":
    sys.exit(main())
