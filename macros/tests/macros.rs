//! Tests of `#[mini::main]` and `#[mini::test]`.
//!
//! `#[mini::main]` cannot be declared inside a test crate, so the three
//! accepted `main` forms live in `tests/ui/pass`, which trybuild builds and
//! runs. `tests/ui/fail` pins each error message and the token it points at.

use std::io::{self, Write};

#[mini::test]
async fn test_returning_unit() {
    let before = async { 20 }.await;
    mini::yield_now().await;
    let after = before + 22;
    assert_eq!(after, 42);
}

#[mini::test]
async fn test_returning_io_result() -> io::Result<()> {
    let mut out = Vec::new();
    out.write_all(b"hello ")?;
    mini::yield_now().await;
    out.write_all(b"mini")?;
    assert_eq!(out, b"hello mini");
    Ok(())
}

// Outer attributes are kept: the harness must see `#[should_panic]`.
#[mini::test]
#[should_panic(expected = "panicked after an await")]
async fn test_keeps_should_panic() {
    mini::yield_now().await;
    panic!("panicked after an await");
}

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
