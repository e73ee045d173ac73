// Command hello is what testkit's TestBuild builds.
package main

import "fmt"

func main() { fmt.Println("hello") }
