package main

// PerSecond is events per second over a window of ms milliseconds (0 for an empty window).
func PerSecond(events, ms int) int {
	return events * 1000 / ms
}
