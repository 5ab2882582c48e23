//! Integration tests of `sae-cops`: byte-exact messages built by hand from RFC 2748's layout,
//! hostile bytes with the exact Error code to send back, integrity over a stream, and
//! properties of the codec under generated and arbitrary input, and the PDP and PEP state
//! machines wired back to back under virtual time.

mod exact;
mod malformed;
mod pdp;
mod pep;
mod proptests;
mod support;
