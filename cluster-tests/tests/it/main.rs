//! Process-level and interop tests of the SAE: every subscriber flow between real `sae-node` and
//! `sae-sim` processes, our bytes against tshark's Diameter dissector, sae-node against
//! python-diameter as a client, sae-sim against python-diameter as a server.
//!
//! Prerequisites (installed by `bash .ci/run`): tshark with the Juniper dictionary fragment
//! `interop/tshark/Custom.xml`, a venv with python-diameter 0.9.0 (`SAE_INTEROP_PYTHON` or
//! `.venv-interop/bin/python`), and the workspace binaries (`cargo build --workspace`).

mod aggregates;
mod cluster;
mod compose;
mod cops_flows;
mod node_contract;
mod python_interop;
mod router_flows;
mod support;
mod tshark;
mod tshark_cops;
