//! Placeholder; filled in with the compose deployment test.
