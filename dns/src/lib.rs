//! Service-discovery DNS.
