//! Process-level and interop tests of the SAE, and its end-to-end benchmark: they live in
//! `tests/it` and `benches/sae_flows.rs` and run real `sae-node` and `sae-sim` processes.
//! The router simulator itself is the `sae-sim` crate (`cluster-tests/sim`); this library is
//! empty.

#![forbid(unsafe_code)]
