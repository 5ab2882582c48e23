#!/usr/bin/env python3
"""python-diameter 0.9.0 as a JSRC client (a router's side) against a running sae-node.

Steps, each observed on the wire by python-diameter, an implementation written elsewhere:

1. CER/CEA: the application becomes ready only after a successful CEA; the CEA's content is kept.
   The SAE's first message on the new connection is an SRQ (Session-Resync, 277), which the
   application's request handler answers with SRR 2001 (nothing to replay).
2. Watchdog both ways: python-diameter sends DWR after a short idle time and must get a DWA;
   then it stays quiet until the node's own watchdog sends a DWR, which python-diameter answers.
3. A well-formed JSRC AAR (User-Name, Framed-IP-Address, NAS-Port-Id, Juniper-Request-Type):
   a subscriber login.
4. The same AAR under application 1 (NASREQ), which the node did not advertise.
5. An AAR carrying a vendor AVP with the M bit set that the SAE does not know (3GPP's
   Charging-Rule-Base-Name).
6. node.stop(): DPR from python-diameter, DPA from the node, connection closed.

The script asserts nothing about the answers itself: it prints what it saw as one line
`SUMMARY {json}` on stdout and leaves the judgement to the calling test. It exits non-zero only
when a step could not run at all (no CEA, no answer, timeout). Diagnostics go to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time

from diameter.message import Message, constants
from diameter.message.avp import Avp
from diameter.message.commands import AaRequest
from diameter.node import Node
from diameter.node.application import SimpleThreadingApplication

from juniper_avps import (
    APP_JSRC,
    LAST_ORIGIN_HOST,
    REQUEST_TYPE,
    VENDOR_JUNIPER,
    answer_to,
    policy_installs,
    register_juniper_avps,
    text,
)

AVP_FAILED_AVP = 279
AVP_VENDOR_SPECIFIC_APPLICATION_ID = 260
AVP_SUPPORTED_VENDOR_ID = 265
AVP_AUTH_APPLICATION_ID = 258
AVP_VENDOR_ID = 266
AVP_CHARGING_RULE_BASE_NAME = 1004
VENDOR_3GPP = 10415
CMD_SESSION_RESYNC = 277


def log(text: str) -> None:
    print(f"[client] {text}", file=sys.stderr, flush=True)


def avp_value(msg: Message, code: int, vendor: int = 0):
    found = msg.find_avps((code, vendor))
    return found[0].value if found else None


class ObservingNode(Node):
    """A python-diameter node that records the base-protocol messages it receives, and the
    order of every message it receives and sends (command code, request?)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen_lock = threading.Lock()
        self.received: list[list] = []
        self.sent: list[list] = []
        self.cea: Message | None = None
        self.dwa_received = 0
        self.dwr_received = 0
        self.dpa: Message | None = None
        self.dpr_received = 0

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

    def receive_dwa(self, conn, message):
        with self.seen_lock:
            self.dwa_received += 1
        log(f"DWA received, Result-Code {avp_value(message, 268)}")
        super().receive_dwa(conn, message)

    def receive_dwr(self, conn, message):
        with self.seen_lock:
            self.dwr_received += 1
        log("DWR received from the node")
        super().receive_dwr(conn, message)

    def receive_dpa(self, conn, message):
        with self.seen_lock:
            self.dpa = message
        log(f"DPA received, Result-Code {avp_value(message, 268)}")
        super().receive_dpa(conn, message)

    def receive_dpr(self, conn, message):
        with self.seen_lock:
            self.dpr_received += 1
        super().receive_dpr(conn, message)


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def describe_cea(cea: Message) -> dict:
    vsas = []
    for vsa in cea.find_avps((AVP_VENDOR_SPECIFIC_APPLICATION_ID, 0)):
        entry = {}
        for inner in vsa.value:
            if inner.code == AVP_VENDOR_ID:
                entry["vendor_id"] = inner.value
            elif inner.code == AVP_AUTH_APPLICATION_ID:
                entry["auth_application_id"] = inner.value
            elif inner.code == 259:
                entry["acct_application_id"] = inner.value
        vsas.append(entry)
    return {
        "result_code": avp_value(cea, 268),
        "e_bit": cea.header.is_error,
        "origin_host": text(avp_value(cea, 264)),
        "origin_realm": text(avp_value(cea, 296)),
        "vendor_specific_application_ids": vsas,
        "supported_vendor_ids": [a.value for a in cea.find_avps((AVP_SUPPORTED_VENDOR_ID, 0))],
        "auth_application_ids": [a.value for a in cea.find_avps((AVP_AUTH_APPLICATION_ID, 0))],
    }


def describe_answer(request: Message, answer: Message) -> dict:
    failed = []
    for failed_avp in answer.find_avps((AVP_FAILED_AVP, 0)):
        for inner in failed_avp.value:
            failed.append({"code": inner.code, "vendor_id": inner.vendor_id})
    return {
        "command_code": answer.header.command_code,
        "application_id": answer.header.application_id,
        "is_request": answer.header.is_request,
        "e_bit": answer.header.is_error,
        "hop_by_hop_matches": answer.header.hop_by_hop_identifier
        == request.header.hop_by_hop_identifier,
        "end_to_end_matches": answer.header.end_to_end_identifier
        == request.header.end_to_end_identifier,
        "request_session_id": text(avp_value(request, 263)),
        "session_id": text(avp_value(answer, 263)),
        "result_code": avp_value(answer, 268),
        "origin_host": text(avp_value(answer, 264)),
        "error_message": text(avp_value(answer, 281)),
        "failed_avps": failed,
        "policy_installs": policy_installs(answer),
    }


def describe_srq(srq: Message) -> dict:
    last = srq.find_avps((LAST_ORIGIN_HOST, VENDOR_JUNIPER))
    return {
        "command_code": srq.header.command_code,
        "application_id": srq.header.application_id,
        "is_request": srq.header.is_request,
        "proxiable": srq.header.is_proxyable,
        "e_bit": srq.header.is_error,
        "origin_host": text(avp_value(srq, 264)),
        "origin_realm": text(avp_value(srq, 296)),
        "destination_host": text(avp_value(srq, 293)),
        "destination_realm": text(avp_value(srq, 283)),
        "auth_application_id": avp_value(srq, AVP_AUTH_APPLICATION_ID),
        "session_id": text(avp_value(srq, 263)),
        "last_origin_host": [text(a.value) for a in last],
        "last_origin_host_flags": [
            {"vendor_bit": bool(a.flags & 0x80), "m_bit": bool(a.flags & 0x40)} for a in last
        ],
    }


def build_aar(node: Node, realm: str, application_id: int) -> AaRequest:
    aar = AaRequest()
    aar.header.is_proxyable = True
    aar.header.application_id = application_id
    aar.session_id = node.session_generator.next_id()
    aar.auth_application_id = application_id
    aar.origin_host = node.origin_host.encode()
    aar.origin_realm = node.realm_name.encode()
    aar.destination_realm = realm.encode()
    aar.auth_request_type = constants.E_AUTH_REQUEST_TYPE_AUTHORIZE_ONLY
    aar.user_name = "subscriber-1@isp.example"
    aar.framed_ip_address = bytes([192, 0, 2, 10])
    aar.nas_port_id = "ge-1/0/0.100"
    aar.append_avp(Avp.new(REQUEST_TYPE, VENDOR_JUNIPER, value=1))
    return aar


def exchange(app, request: Message, timeout: float) -> dict:
    answer = app.send_request(request, timeout=timeout)
    return describe_answer(request, answer)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="the node's Diameter port")
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--node-host", default="sae.test.realm", help="the node's Origin-Host")
    parser.add_argument("--origin-host", default="client.test.realm")
    parser.add_argument("--realm", default="test.realm")
    parser.add_argument(
        "--node-watchdog-secs",
        type=float,
        default=6,
        help="the node's Tw, to bound the wait for its DWR",
    )
    args = parser.parse_args()

    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    register_juniper_avps()

    summary: dict = {"steps": []}
    node = ObservingNode(args.origin_host, args.realm, vendor_ids=[VENDOR_JUNIPER])
    # Peer timers are checked once per wake-up; one second keeps the idle timer precise enough.
    node.wakeup_interval = 1
    peer = node.add_peer(
        f"aaa://{args.node_host}:{args.port};transport=tcp",
        args.realm,
        ip_addresses=[args.address],
        is_persistent=True,
    )
    # Long idle time until the watchdog step; short DWA timeout so a silent node is noticed.
    peer.idle_timeout = 600
    peer.dwa_timeout = 5
    # Never reconnect behind the test's back.
    peer.reconnect_wait = 3600

    requests_seen: list[dict] = []

    def on_request(app, message):
        # The SAE opens every connection with SRQ: nothing to replay, SRR 2001. No other request
        # is expected from it here (no session asks for a PPR, ASR or ACR); record any that come.
        if message.header.command_code == CMD_SESSION_RESYNC:
            requests_seen.append(describe_srq(message))
            return answer_to(
                message,
                constants.E_RESULT_CODE_DIAMETER_SUCCESS,
                args.origin_host,
                args.realm,
                auth_application_id=APP_JSRC,
            )
        requests_seen.append({"command_code": message.header.command_code})
        return answer_to(
            message,
            constants.E_RESULT_CODE_DIAMETER_UNABLE_TO_COMPLY,
            args.origin_host,
            args.realm,
            error_message="unexpected request",
        )

    app = SimpleThreadingApplication(APP_JSRC, is_auth_application=True, request_handler=on_request)
    node.add_application(app, [peer])
    node.start()
    stopped = False
    try:
        app.wait_for_ready(timeout=10)
        wait_until(lambda: node.cea is not None, 5, "the CEA to be recorded")
        summary["cea"] = describe_cea(node.cea)
        summary["steps"].append("cer-cea")
        log(f"CEA: {summary['cea']}")

        # SRQ from the node, answered by on_request; wait until the SRR is on its way.
        wait_until(
            lambda: node.has_sent(CMD_SESSION_RESYNC, False), 10, "the SRR to the node's SRQ"
        )
        summary["steps"].append("srq-srr")

        # Watchdog, our side first: after two idle seconds python-diameter sends DWR.
        peer.idle_timeout = 2
        wait_until(lambda: node.dwa_received >= 1, 15, "a DWA to python-diameter's DWR")
        # Then silence, so that the node's own Tw expires and it sends DWR.
        peer.idle_timeout = 600
        wait_until(
            lambda: node.dwr_received >= 1,
            args.node_watchdog_secs + 2 + 8,
            "a DWR from the node",
        )
        summary["watchdog"] = {
            "dwa_received": node.dwa_received,
            "dwr_received": node.dwr_received,
            "connection_ready": peer.connection is not None
            and peer.connection.state in (0x12, 0x13),
        }
        summary["steps"].append("watchdog")

        summary["aar"] = exchange(app, build_aar(node, args.realm, APP_JSRC), 5)
        summary["steps"].append("aar")
        log(f"AAA: {summary['aar']}")

        summary["aar_unadvertised_application"] = exchange(
            app, build_aar(node, args.realm, constants.APP_NASREQ_APPLICATION), 5
        )
        summary["steps"].append("aar-unadvertised-application")
        log(f"answer for application 1: {summary['aar_unadvertised_application']}")

        # A 3GPP AVP with the M bit (Charging-Rule-Base-Name, TS 29.212) that the SAE's
        # dictionary does not define; tshark and python-diameter know it.
        unknown = Avp.new(
            AVP_CHARGING_RULE_BASE_NAME, VENDOR_3GPP, value="gold-100M", is_mandatory=True
        )
        aar = build_aar(node, args.realm, APP_JSRC)
        aar.append_avp(unknown)
        summary["aar_unknown_mandatory_avp"] = exchange(app, aar, 5)
        summary["steps"].append("aar-unknown-mandatory-avp")
        log(f"answer with unknown AVP: {summary['aar_unknown_mandatory_avp']}")

        # python-diameter's stop() sends DPR and waits until the connection is gone.
        started = time.monotonic()
        stopped = True
        node.stop(wait_timeout=10)
        summary["disconnect"] = {
            "dpa_result_code": avp_value(node.dpa, 268) if node.dpa is not None else None,
            "dpa_origin_host": text(avp_value(node.dpa, 264)) if node.dpa is not None else None,
            "connections_left": len(node.connections),
            "seconds": round(time.monotonic() - started, 2),
        }
        summary["steps"].append("dpr-dpa")
        summary["requests_from_node"] = requests_seen
        summary["dpr_from_node"] = node.dpr_received
        with node.seen_lock:
            summary["received_order"] = list(node.received)
            summary["sent_order"] = list(node.sent)
        print("SUMMARY " + json.dumps(summary), flush=True)
        return 0
    except Exception as exc:  # report what was reached, then fail
        summary["error"] = f"{type(exc).__name__}: {exc}"
        summary["requests_from_node"] = requests_seen
        with node.seen_lock:
            summary["received_order"] = list(node.received)
            summary["sent_order"] = list(node.sent)
        print("SUMMARY " + json.dumps(summary), flush=True)
        return 1
    finally:
        if not stopped:
            try:
                node.stop(wait_timeout=2, force=True)
            except Exception as exc:
                log(f"stop failed: {exc}")


if __name__ == "__main__":
    sys.exit(main())
