"""The Juniper JSRC/PTSP AVPs (vendor 2636) for python-diameter 0.9.0.

python-diameter knows only Juniper AVPs 1100-1111; the codes the SAE exchanges with routers are
registered here with the same names and types as the SAE's dictionary
(node/diameter/dictionary/base.toml) and the tshark dictionary fragment (tshark/Custom.xml).
"""

from diameter.message.avp import (
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
