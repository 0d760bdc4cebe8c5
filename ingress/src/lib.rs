//! The L7 ingress proxy.
