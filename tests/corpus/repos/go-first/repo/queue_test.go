package main

import "testing"

func TestNext(t *testing.T) {
	if got := Next([]string{"a", "b"}); got != "a" {
		t.Fatalf("got %q", got)
	}
}

func TestNextOfNothing(t *testing.T) {
	if got := Next(nil); got != "" {
		t.Fatalf("got %q", got)
	}
}
