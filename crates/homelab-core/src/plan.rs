//! The supervisor's pure plan: desired state + world + actions + memory + now → what to do.
//! (Built by the supervisor issue.)
