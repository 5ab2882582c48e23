//! `saectl`: the command-line client of the SAE management API (`sae.v1.Management`).
//!
//! The binary is thin; the work is here, in three steps that are tested on their own:
//!
//! - [`cli`]: the command line (clap derive) and its help texts;
//! - [`request`]: command line → the gRPC requests to send ([`request::Call`]): subscriber
//!   references, `KEY=VALUE` substitutions, service and rule files;
//! - [`output`]: responses → aligned tables, sentences and JSON;
//!
//! and [`run`] connects to the node, sends the requests and writes the output; [`error`] maps
//! every failure to an exit status.

#![forbid(unsafe_code)]

pub mod cli;
pub mod error;
pub mod output;
pub mod request;
pub mod run;
