//! COPS on the node (we are the PDP): call admission for SBCs, subscriber provisioning over
//! COPS-PR, usage feedback.

pub mod admission;
