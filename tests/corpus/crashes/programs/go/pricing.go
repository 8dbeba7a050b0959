package main

import (
	"fmt"
	"sort"
)

type Price struct {
	Amount int
}

type Line struct {
	SKU   string
	Price *Price
}

func sortByPrice(lines []Line) {
	sort.Slice(lines, func(i, j int) bool {
		return lines[i].Price.Amount < lines[j].Price.Amount
	})
}

func total(c *Cart, lines []Line, chained bool) (sum int) {
	if chained {
		defer func() {
			if r := recover(); r != nil {
				panic(fmt.Errorf("pricing cart %d: %w", c.ID, r.(error)))
			}
		}()
	}
	sortByPrice(lines)
	for _, line := range lines {
		sum += line.Price.Amount
	}
	return sum
}
