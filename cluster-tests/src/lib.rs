//! The router simulator (`sae-sim`) and the harness shared by process-level tests.
//!
//! This first form plays the Diameter side of a JSRC/PTSP router as far as the transport
//! goes: it connects, exchanges capabilities, keeps the RFC 3539 watchdog and disconnects with
//! DPR. Subscriber flows arrive with the node's subscriber sessions.

#![forbid(unsafe_code)]

pub mod diameter_router;
