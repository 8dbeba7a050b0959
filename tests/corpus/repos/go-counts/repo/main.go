package main

import "fmt"

func main() {
	var c Counter
	fmt.Println(c.Add("go"))
}
