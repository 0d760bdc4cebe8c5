//! Address management for overlay networks (see ipam/README in the lib docs).
