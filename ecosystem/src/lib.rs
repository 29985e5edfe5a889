//! Examples of mini with the libraries people already use; see `examples/` and
//! `docs/ecosystem.md`.

#![forbid(unsafe_code)]

pub mod redis;

/// `docs/ecosystem.md`, the chapter on using mini with futures, channels, TLS, WebSockets and
/// hyper: its Rust blocks compile (and most run) as this package's doc tests, against its
/// dev-dependencies.
#[cfg(doctest)]
#[doc = include_str!("../../docs/ecosystem.md")]
pub struct EcosystemChapter;
