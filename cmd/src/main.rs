mod flags;
mod logger;
fn main() {}
