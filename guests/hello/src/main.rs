fn main() {
    println!("hello from a WASI command that is not an nslab scenario");
}
