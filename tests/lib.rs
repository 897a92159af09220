//! Helpers for natsd's integration tests.
