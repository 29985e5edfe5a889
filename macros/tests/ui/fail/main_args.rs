#[mini::main]
async fn main(_count: u32) {}
