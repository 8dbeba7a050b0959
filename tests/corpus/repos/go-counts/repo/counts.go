package main

type Counter struct {
	seen map[string]int
}

func (c *Counter) Add(word string) int {
	c.seen[word]++
	return c.seen[word]
}
