package main

import "testing"

func TestAdd(t *testing.T) {
	var c Counter
	c.Add("a")
	if got := c.Add("a"); got != 2 {
		t.Fatalf("got %d", got)
	}
}
