// A parser of quantities that unwraps a bad number.
fn quantity(text: &str) -> u32 {
    text.trim().parse().expect("quantity must be a number")
}

fn total(lines: &[&str]) -> u32 {
    lines.iter().map(|line| quantity(line)).sum()
}

fn main() {
    eprintln!("2026-01-01T12:00:04Z INFO  shop starting");
    let lines = ["1", "2", "three"];
    println!("{}", total(&lines));
}
