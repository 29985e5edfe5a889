//! `#[mini::main]` on an `async fn main()` returning `()`.

#[mini::main]
async fn main() {
    let before = async { 20 }.await;
    mini::yield_now().await;
    assert_eq!(before + 22, 42);
}
