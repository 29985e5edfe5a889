//! Examples of mini with the libraries people already use; see `examples/` and
//! `docs/ecosystem.md`.

#![forbid(unsafe_code)]

pub mod redis;
