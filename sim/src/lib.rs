//! The digital twin.
