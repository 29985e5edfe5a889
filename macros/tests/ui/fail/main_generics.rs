#[mini::main]
async fn main<T: Default>() {}
