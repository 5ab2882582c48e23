//! Aggregate services (seed 003): an aggregate service session activates its fragment services
//! on the subscriber sessions their reference expressions name, on this node or on others.
//!
//! - [`machine`]: the aggregate session's rules and timers, sans-IO.
//! - [`propagation`]: what a fragment is activated with: the expression's environment, the
//!   parameters bound from the aggregate's substitutions, the propagated attributes.
//! - [`session`]: the aggregate sessions of a node, each a task driving its machine, and the
//!   [`session::Host`] they use (resolution, activation), passed in at construction.

pub mod machine;
pub mod propagation;
pub mod session;
