//! `sae-sim`, the router simulator: a JSRC/PTSP router, a COPS SBC and a COPS-PR router for the
//! SAE, as a library (for the process-level tests in `cluster-tests`) and the `sae-sim` binary.
//!
//! - [`diameter_router`]: a bare Diameter initiator (CER/CEA, watchdog, DPR) and the
//!   capabilities a simulated router announces; `sae-sim diameter`.
//! - [`router_state`]: the JSRC/PTSP router, sans-IO: the subscriber session table and every
//!   decision (login, answers to PPR/ASR/ACR/SRQ, accounting, logout, the multi-SAE rule).
//! - [`sim`]: the tokio driver of that state over one or more SAE connections; `sae-sim router`.
//! - [`load`]: logins at a rate over K router connections with a latency histogram;
//!   `sae-sim load`.
//! - [`control`], [`subscribers`], [`events`]: stdin commands, subscriber templates and
//!   scenario files, the JSON events on stdout (and [`events::check_single_active`], the
//!   one-active-SAE check over a router's event log).
//! - [`cops_sbc`], [`cops_pr`]: the COPS PEPs, sans-IO over `sae_cops::pep`: an SBC asking for
//!   call admission (`sae-sim sbc`) and a COPS-PR router (`sae-sim copspr`); [`cops_driver`]:
//!   their tokio driver (connection, back-off and HA switch-over, control commands);
//!   [`cops_events`]: their JSON events.
//! - [`endpoint`]: `--connect` arguments, socket addresses or `host:port` names.
//!
//! The command line, the events and the control commands are documented in the crate's
//! `README.md`.

#![forbid(unsafe_code)]

pub mod control;
pub mod cops_driver;
pub mod cops_events;
pub mod cops_pr;
pub mod cops_sbc;
pub mod diameter_router;
pub mod endpoint;
pub mod events;
pub mod load;
pub mod router_state;
pub mod sim;
pub mod subscribers;

#[cfg(test)]
mod cops_test_support;
#[cfg(test)]
mod cops_tests;
#[cfg(test)]
mod sim_tests;
