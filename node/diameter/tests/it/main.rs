//! Integration tests of `sae-diameter`: two peers wired together in memory with a synthetic
//! clock, hostile bytes on an open connection, and properties of the codec under arbitrary
//! input.

mod malformed;
mod peer;
mod proptests;
mod support;
