package main

import "fmt"

func main() {
	fmt.Println(PerSecond(5, 0))
}
