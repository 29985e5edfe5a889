#[mini::main]
const async fn main() {}
