//! `#[mini::main]` returning `Result<(), Box<dyn Error>>`: `?` converts any
//! error type, which needs the block's error type inferred from `main`'s.

use std::error::Error;

#[mini::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let n: u32 = "41".parse()?;
    mini::yield_now().await;
    let m: u8 = "1".parse()?;
    assert_eq!(n + u32::from(m), 42);
    Ok(())
}
