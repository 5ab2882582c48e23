"""The Juniper JSRC/PTSP AVPs (vendor 2636) for python-diameter 0.9.0.

python-diameter knows only Juniper AVPs 1100-1111; the codes the SAE exchanges with routers are
registered here with the same names and types as the SAE's dictionary
(node/diameter/dictionary/base.toml) and the tshark dictionary fragment (tshark/Custom.xml).
It also reads the Juniper policy AVPs back and builds answers to the SAE's requests.
"""

from __future__ import annotations

from diameter.message.avp import (
    Avp,
    AvpEnumerated,
    AvpGrouped,
    AvpOctetString,
    avp as avp_registry,
)

VENDOR_JUNIPER = 2636

APP_JSRC = 16777244
APP_PTSP = 16777273

DHCP_OPTIONS = 2010
DHCP_GI_ADDRESS = 2011
POLICY_INSTALL = 2020
POLICY_NAME = 2021
POLICY_DEFINITION = 2022
TEMPLATE_NAME = 2023
SUBSTITUTION = 2024
SUBSTITUTION_NAME = 2025
SUBSTITUTION_VALUE = 2026
POLICY_REMOVE = 2027
REQUEST_TYPE = 2050
ACCT_RECORD = 2053
ACCT_COLLECT = 2054
LAST_ORIGIN_HOST = 2055

_DEFINITIONS = [
    (DHCP_OPTIONS, "Juniper-DHCP-Options", AvpOctetString),
    (DHCP_GI_ADDRESS, "Juniper-DHCP-GI-Address", AvpOctetString),
    (POLICY_INSTALL, "Juniper-Policy-Install", AvpGrouped),
    (POLICY_NAME, "Juniper-Policy-Name", AvpOctetString),
    (POLICY_DEFINITION, "Juniper-Policy-Definition", AvpGrouped),
    (TEMPLATE_NAME, "Juniper-Template-Name", AvpOctetString),
    (SUBSTITUTION, "Juniper-Substitution", AvpGrouped),
    (SUBSTITUTION_NAME, "Juniper-Substitution-Name", AvpOctetString),
    (SUBSTITUTION_VALUE, "Juniper-Substitution-Value", AvpOctetString),
    (POLICY_REMOVE, "Juniper-Policy-Remove", AvpGrouped),
    (REQUEST_TYPE, "Juniper-Request-Type", AvpEnumerated),
    (ACCT_RECORD, "Juniper-Acct-Record", AvpGrouped),
    (ACCT_COLLECT, "Juniper-Acct-Collect", AvpEnumerated),
    # DiameterIdentity: python-diameter carries identities as octet strings.
    (LAST_ORIGIN_HOST, "Juniper-Last-Origin-Host", AvpOctetString),
]


def register_juniper_avps() -> None:
    """Registers every Juniper AVP above (V and M bits set)."""
    for code, name, type_cls in _DEFINITIONS:
        avp_registry.register(
            avp=code, name=name, type_cls=type_cls, vendor=VENDOR_JUNIPER, mandatory=True
        )


# ---------------------------------------------------------------- reading and answering
#
# python-diameter has no class for the SAE's own requests (SRQ 277; 288 is only a placeholder
# without AVP attributes), so their answers are built by hand here: such a message's
# `to_answer()` copies the header, but AVPs set as attributes on it are never encoded.

AVP_SESSION_ID = 263
AVP_ORIGIN_HOST = 264
AVP_RESULT_CODE = 268
AVP_AUTH_APPLICATION_ID = 258
AVP_ORIGIN_REALM = 296
AVP_ERROR_MESSAGE = 281
AVP_ACCOUNTING_INPUT_OCTETS = 363
AVP_ACCOUNTING_OUTPUT_OCTETS = 364
AVP_ACCOUNTING_INPUT_PACKETS = 365
AVP_ACCOUNTING_OUTPUT_PACKETS = 366

_COUNTERS = [
    ("input_octets", AVP_ACCOUNTING_INPUT_OCTETS),
    ("output_octets", AVP_ACCOUNTING_OUTPUT_OCTETS),
    ("input_packets", AVP_ACCOUNTING_INPUT_PACKETS),
    ("output_packets", AVP_ACCOUNTING_OUTPUT_PACKETS),
]


def text(value):
    """An AVP value as text (OctetString and DiameterIdentity values decode as bytes)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def first_value(msg, code: int, vendor: int = 0):
    """The value of the first (code, vendor) AVP at the top level of `msg`, or None."""
    for a in msg.avps:
        if a.code == code and a.vendor_id == vendor:
            return a.value
    return None


def _flags(a) -> dict:
    """The AVP's V and M bits as received, and its Vendor-Id."""
    return {
        "vendor_bit": bool(a.flags & a.avp_flag_vendor),
        "m_bit": bool(a.flags & a.avp_flag_mandatory),
        "vendor_id": a.vendor_id,
    }


def _inner(a, code: int, vendor: int = VENDOR_JUNIPER) -> list:
    if not isinstance(a.value, list):
        raise ValueError(f"AVP {a.code} was not decoded as Grouped: {a.value!r}")
    return [i for i in a.value if i.code == code and i.vendor_id == vendor]


def describe_policy_install(a) -> dict:
    """Juniper-Policy-Install as python-diameter decoded it (AVP by AVP, nothing inferred)."""
    definitions = []
    for d in _inner(a, POLICY_DEFINITION):
        substitutions = []
        for s in _inner(d, SUBSTITUTION):
            substitutions.append(
                {
                    "name": [text(n.value) for n in _inner(s, SUBSTITUTION_NAME)],
                    "value": [text(v.value) for v in _inner(s, SUBSTITUTION_VALUE)],
                }
            )
        definitions.append(
            {
                "policy_name": [text(n.value) for n in _inner(d, POLICY_NAME)],
                "template_name": [text(t.value) for t in _inner(d, TEMPLATE_NAME)],
                "substitutions": substitutions,
                "flags": _flags(d),
            }
        )
    return {
        "policy_name": [text(n.value) for n in _inner(a, POLICY_NAME)],
        "definitions": definitions,
        "acct_collect": [c.value for c in _inner(a, ACCT_COLLECT)],
        "inner_avps": [[i.code, i.vendor_id] for i in a.value],
        "flags": _flags(a),
    }


def describe_policy_remove(a) -> dict:
    return {
        "policy_name": [text(n.value) for n in _inner(a, POLICY_NAME)],
        "flags": _flags(a),
    }


def policy_installs(msg) -> list:
    return [describe_policy_install(a) for a in msg.find_avps((POLICY_INSTALL, VENDOR_JUNIPER))]


def policy_removes(msg) -> list:
    return [describe_policy_remove(a) for a in msg.find_avps((POLICY_REMOVE, VENDOR_JUNIPER))]


def acct_record(policy_name: str, **counters: int):
    """A Juniper-Acct-Record: the policy and the counters given (input_octets=..., ...)."""
    inner = [Avp.new(POLICY_NAME, VENDOR_JUNIPER, value=policy_name.encode())]
    for name, code in _COUNTERS:
        if name in counters:
            inner.append(Avp.new(code, value=counters.pop(name)))
    if counters:
        raise ValueError(f"unknown counters {sorted(counters)}")
    return Avp.new(ACCT_RECORD, VENDOR_JUNIPER, value=inner)


def answer_to(request, result_code: int, origin_host: str, origin_realm: str,
              error_message: str | None = None, auth_application_id: int | None = None):
    """An answer to `request` built AVP by AVP: Session-Id (first, when the request has one),
    Result-Code, Origin-Host, Origin-Realm, then the optional ones."""
    answer = request.to_answer()
    session_id = first_value(request, AVP_SESSION_ID)
    if session_id is not None:
        answer.append_avp(Avp.new(AVP_SESSION_ID, value=session_id))
    answer.append_avp(Avp.new(AVP_RESULT_CODE, value=result_code))
    answer.append_avp(Avp.new(AVP_ORIGIN_HOST, value=origin_host.encode()))
    answer.append_avp(Avp.new(AVP_ORIGIN_REALM, value=origin_realm.encode()))
    if auth_application_id is not None:
        answer.append_avp(Avp.new(AVP_AUTH_APPLICATION_ID, value=auth_application_id))
    if error_message:
        answer.append_avp(Avp.new(AVP_ERROR_MESSAGE, value=error_message))
    return answer
