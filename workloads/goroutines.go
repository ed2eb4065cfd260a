// The Go side of conlab's `goroutines` experiment. Standard library only, no modules.
//
// main spawns -gs goroutines, all from its own P, that wait at a gate; once every one has
// arrived, main measures the time and memory they took and opens the gate. Each then does
// -work loop iterations of CPU work, and a -block-fraction of them block in the middle in a
// real system call (nanosleep) for -block-ms: the M sleeps in the kernel with its G, and
// sysmon hands the P to another M - more threads than GOMAXPROCS.
//
// The same shape as workloads/goroutines.py runs on the Python M:N runtime. Results go to
// stdout as JSON lines; GODEBUG=schedtrace=100,scheddetail=1 (set by the lab) writes the
// scheduler's own view to stderr.
package main

import (
	"encoding/json"
	"flag"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

var sink int64 // keeps the CPU work from being optimised away

// spin is the CPU work: the same loop as the Python side.
func spin(n int) {
	total := 0
	for i := 0; i < n; i++ {
		total += i * i
	}
	atomic.AddInt64(&sink, int64(total))
}

// block sleeps in the kernel. A real blocking system call, unlike time.Sleep (which only
// parks the goroutine on a timer and leaves the M free).
func block(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	for syscall.Nanosleep(&ts, &ts) == syscall.EINTR { // Go's preemption signal interrupts it
	}
}

// calibrate: loop iterations per millisecond of CPU on this machine, so that -work-ms
// asks Go and Python for the same CPU time per goroutine.
func calibrate() float64 {
	for n := 10000; ; n *= 2 {
		start := time.Now()
		spin(n)
		if took := time.Since(start); took >= 20*time.Millisecond {
			return float64(n) / (float64(took) / float64(time.Millisecond))
		}
	}
}

// blocks spreads the blocking goroutines evenly: round(gs*fraction) of them. Same rule in Python.
func blocks(i int, fraction float64) bool {
	return int(float64(i+1)*fraction) > int(float64(i)*fraction)
}

func emit(fields map[string]interface{}) {
	line, _ := json.Marshal(fields)
	os.Stdout.Write(append(line, '\n'))
}

// memory: resident and virtual bytes of this process, from the kernel (as for Python).
func memory() (rss, vm int64) {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, 0
	}
	f := strings.Fields(string(data))
	page := int64(os.Getpagesize())
	v, _ := strconv.ParseInt(f[0], 10, 64)
	r, _ := strconv.ParseInt(f[1], 10, 64)
	return r * page, v * page
}

func osThreads() int {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "Threads:") {
			n, _ := strconv.Atoi(strings.TrimSpace(line[len("Threads:"):]))
			return n
		}
	}
	return 0
}

func stackInuse() int64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.StackInuse)
}

func main() {
	gs := flag.Int("gs", 1000, "goroutines")
	ps := flag.Int("ps", runtime.NumCPU(), "GOMAXPROCS")
	work := flag.Int("work", 1000, "loop iterations per goroutine")
	workMs := flag.Float64("work-ms", 0, "CPU milliseconds per goroutine (overrides -work)")
	fraction := flag.Float64("block-fraction", 0, "fraction of goroutines that block")
	blockMs := flag.Float64("block-ms", 20, "how long a blocking call lasts, ms")
	maxThreads := flag.Int("max-threads", 10000, "debug.SetMaxThreads (the lab's cap)")
	lingerMs := flag.Int("linger-ms", 0, "stay this long after the end, so the trace sees it")
	progressMs := flag.Int("progress-ms", 100, "report completed goroutines this often (0: never)")
	flag.Parse()

	runtime.GOMAXPROCS(*ps)
	debug.SetMaxThreads(*maxThreads)
	blockFor := time.Duration(*blockMs * float64(time.Millisecond))
	perMs := 0.0
	if *workMs > 0 {
		perMs = calibrate()
		*work = int(*workMs * perMs)
	}

	var arrived, finished sync.WaitGroup
	gate := make(chan struct{})
	completed := make([]int32, *gs)
	var done int64

	stop := make(chan struct{})
	if *progressMs > 0 {
		go func() {
			tick := time.NewTicker(time.Duration(*progressMs) * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-tick.C:
					emit(map[string]interface{}{"ev": "progress", "done": atomic.LoadInt64(&done),
						"os_threads": osThreads()})
				case <-stop:
					return
				}
			}
		}()
	}

	stack0 := stackInuse()
	rss0, vm0 := memory()
	start := time.Now()
	arrived.Add(*gs)
	finished.Add(*gs)
	for i := 0; i < *gs; i++ {
		go func(id int) {
			arrived.Done()
			<-gate
			spin(*work / 2)
			if blocks(id, *fraction) {
				block(blockFor)
			}
			spin(*work - *work/2)
			atomic.AddInt32(&completed[id], 1)
			atomic.AddInt64(&done, 1)
			finished.Done()
		}(i)
	}
	spawn := time.Since(start)
	arrived.Wait()
	ready := time.Since(start)
	rss1, vm1 := memory()
	stack1 := stackInuse()
	emit(map[string]interface{}{"ev": "spawned", "gs": *gs, "spawn_ns": spawn.Nanoseconds(),
		"ready_ns": ready.Nanoseconds(), "rss_before": rss0, "rss_after": rss1,
		"vm_before": vm0, "vm_after": vm1, "stack_before": stack0, "stack_after": stack1,
		"os_threads": osThreads()})

	runStart := time.Now()
	close(gate) // readies every goroutine onto this P's run queue (the rest go global)
	finished.Wait()
	run := time.Since(runStart)
	close(stop)
	if *progressMs > 0 {
		emit(map[string]interface{}{"ev": "progress", "done": atomic.LoadInt64(&done),
			"os_threads": osThreads()})
	}

	once, twice, never := 0, 0, 0
	for _, n := range completed {
		switch {
		case n == 1:
			once++
		case n == 0:
			never++
		default:
			twice++
		}
	}
	time.Sleep(time.Duration(*lingerMs) * time.Millisecond)
	var usage syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &usage)
	cpu := time.Duration(usage.Utime.Nano() + usage.Stime.Nano())
	emit(map[string]interface{}{"ev": "result", "gs": *gs, "gomaxprocs": runtime.GOMAXPROCS(0),
		"run_ns": run.Nanoseconds(), "cpu_ns": cpu.Nanoseconds(), "completed_once": once,
		"completed_twice": twice, "never_completed": never, "os_threads": osThreads(),
		"go_version": runtime.Version(), "work": *work, "iterations_per_ms": perMs})
}
