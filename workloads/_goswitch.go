// Two goroutines hand a token back and forth over unbuffered channels, on one P
// (GOMAXPROCS=1): every hand-off is a goroutine switch done by Go's scheduler in user
// space, with no kernel involved. Prints one JSON line: nanoseconds per switch.
package main

import (
	"encoding/json"
	"flag"
	"os"
	"runtime"
	"time"
)

func main() {
	n := flag.Int("n", 200000, "round trips to time")
	flag.Parse()
	runtime.GOMAXPROCS(1)
	ping, pong := make(chan struct{}), make(chan struct{})
	go func() {
		for range ping {
			pong <- struct{}{}
		}
	}()
	for i := 0; i < 1000; i++ { // warm up
		ping <- struct{}{}
		<-pong
	}
	start := time.Now()
	for i := 0; i < *n; i++ {
		ping <- struct{}{}
		<-pong
	}
	elapsed := time.Since(start)
	close(ping)
	json.NewEncoder(os.Stdout).Encode(map[string]interface{}{
		"round_trips":   *n,
		"ns_per_switch": float64(elapsed.Nanoseconds()) / float64(2**n),
		"go":            runtime.Version(),
	})
}
