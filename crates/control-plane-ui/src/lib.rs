//! tracing-subscriber
//!
//! Not built yet: its issue comes later. The binary says so and exits non-zero.
