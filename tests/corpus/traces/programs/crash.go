// A cache that writes to a nil map.
package main

import (
	"fmt"
	"os"
)

type Cache struct {
	entries map[string]int
}

func (c *Cache) Put(key string, value int) {
	c.entries[key] = value
}

func main() {
	fmt.Fprintln(os.Stderr, "2026/01/01 12:00:05 INFO cache starting")
	cache := &Cache{}
	cache.Put("answer", 42)
}
