// A checkout service's entry point: `app BUG VARIANT CART_ID VALUE`.
// BUG a: an item index past the cart's items (runtime error: index out of range) in cart.go.
// BUG b: a line without a price, dereferenced inside sort.Slice's less function in pricing.go
// (nil pointer dereference, with sort's frames from the standard library).
// VARIANT single: the panic escapes as it is; chained: the app recovers it and panics again with
// a wrapped error (`panic: … [recovered]` then the new panic).
package main

import (
	"os"
	"strconv"
)

func main() {
	chained := os.Args[2] == "chained"
	id, _ := strconv.Atoi(os.Args[3])
	value, _ := strconv.Atoi(os.Args[4])
	cart := &Cart{ID: id, Items: []string{"A-1", "B-2", "C-3"}}
	if os.Args[1] == "a" {
		checkout(cart, value, chained)
	} else {
		lines := make([]Line, 5)
		for i := range lines {
			if i != value%5 {
				lines[i] = Line{SKU: "A-" + strconv.Itoa(i), Price: &Price{Amount: 100 * (i + 1)}}
			}
		}
		total(cart, lines, chained)
	}
}
