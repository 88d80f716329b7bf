//! Guest probes.
