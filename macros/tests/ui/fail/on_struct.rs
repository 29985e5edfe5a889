#[mini::main]
pub struct Server;

fn main() {}
