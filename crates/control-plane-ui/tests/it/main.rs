//! Integration tests of control-plane-ui: every endpoint through the router (`oneshot`), every
//! refusal with a check that nothing changed on disk, and the real browser test.

mod browser;
mod console;
mod disk;
mod files;
mod fixture;
mod oidc;
mod openapi;
mod retry;
mod roles;
mod router;
mod uipages;
