//! podman on shoal networks (filled in below).
