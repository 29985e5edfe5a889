//! `#[mini::main]` returning `std::io::Result<()>`; outer attributes, doc
//! comments and visibility are kept, and `return` leaves the body as in an
//! `async fn`.

use std::io::{self, Write};

/// Writes across an await and checks the result.
#[mini::main]
#[deny(unused_must_use)]
pub async fn main() -> io::Result<()> {
    let mut out = Vec::new();
    out.write_all(b"hello ")?;
    mini::yield_now().await;
    out.write_all(b"mini")?;
    assert_eq!(out, b"hello mini");
    return Ok(());
}
