//! The classic I/O models as small echo servers, one example each, for `docs/io-models.md`.
//!
//! ```text
//! cargo run --release -p mini-iomodels --example io_poll -- 127.0.0.1:9000
//! ```
//!
//! The examples are the whole point; this library is empty.

#![forbid(unsafe_code)]
