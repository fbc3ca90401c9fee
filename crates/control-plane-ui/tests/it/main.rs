//! Integration tests of control-plane-ui: router tests and the browser test.
