#[mini::test]
async fn takes_args(_count: u32) {}

fn main() {}
