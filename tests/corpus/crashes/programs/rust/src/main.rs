// A checkout service's entry point: `app BUG CART_ID VALUE`.
// BUG a: a quantity is not a number (a panic in `cart`, from `unwrap_or_else`).
// BUG b: a price index past the price list (an index panic inside `pricing`, via std).
// Run with RUST_BACKTRACE=0 for the short panic, =1 for the panic with its backtrace.
mod cart;
mod pricing;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cart_id: u64 = args[1].parse().expect("a cart id");
    if args[0] == "a" {
        cart::add_line(cart_id, &args[2]);
    } else {
        cart::total(cart_id, args[2].parse().expect("an index"));
    }
}
