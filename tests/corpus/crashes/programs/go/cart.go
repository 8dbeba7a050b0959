package main

import "fmt"

type Cart struct {
	ID    int
	Items []string
}

func (c *Cart) Item(index int) string {
	return c.Items[index]
}

func checkout(c *Cart, index int, chained bool) string {
	if chained {
		defer func() {
			if r := recover(); r != nil {
				panic(fmt.Errorf("checkout of cart %d: %v", c.ID, r))
			}
		}()
	}
	return c.Item(index)
}
