//! NoCloud seed images.
