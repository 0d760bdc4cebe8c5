//! The agent's overlay duties: derive this node's plan from the cluster state
//! ([`view`]), keep the kernel equal to it ([`reconciler`]), and report the node's own
//! routes and MTU ([`report`]).

pub mod dns;
pub mod encrypted;
pub mod error;
pub mod keys;
pub mod loopback;
pub mod mesh;
pub mod reconciler;
pub mod report;
pub mod view;

pub use reconciler::Overlay;
