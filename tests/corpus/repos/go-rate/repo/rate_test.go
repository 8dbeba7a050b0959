package main

import "testing"

func TestPerSecond(t *testing.T) {
	if got := PerSecond(5, 500); got != 10 {
		t.Fatalf("got %d", got)
	}
	if got := PerSecond(5, 0); got != 0 {
		t.Fatalf("empty window: got %d", got)
	}
}
