//! User-mode networking backends.
