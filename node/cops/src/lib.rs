//! `sae-cops`: a sans-IO COPS stack (being written).

#![forbid(unsafe_code)]

pub mod pr;
pub mod usage;
