//! Browser test: placeholder replaced below.
