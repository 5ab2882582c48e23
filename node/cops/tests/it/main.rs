//! Integration tests of `sae-cops`: byte-exact messages built by hand from RFC 2748's layout,
//! hostile bytes with the exact Error code to send back, integrity over a stream, and
//! properties of the codec under generated and arbitrary input.

mod exact;
mod malformed;
mod proptests;
mod support;
