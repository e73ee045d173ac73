package main

import (
	"time"

	"github.com/airlock/airlock/proxy"
)

// hardFlags are the hardening knobs of `airlock serve`: how long agents may
// take to send headers or to read what airlock writes, and how many
// tunnels one agent may hold open.
type hardFlags struct {
	readHeaderTimeout time.Duration
	writeTimeout      time.Duration
	maxConnsPerAgent  int
}

func (h *hardFlags) register(fs *flagSet) {
	fs.DurationVar(&h.readHeaderTimeout, "read-header-timeout", 10*time.Second,
		"how long an agent may take to send a request's headers (slowloris guard)")
	fs.DurationVar(&h.writeTimeout, "write-timeout", 60*time.Second,
		"how long one write to an agent may block (an agent that stops reading is cut off)")
	fs.IntVar(&h.maxConnsPerAgent, "max-conns-per-agent", 256,
		"CONNECT tunnels one agent may hold open at once (-1: unlimited)")
}

func (h *hardFlags) apply(cfg *proxy.Config) {
	cfg.ReadHeaderTimeout = h.readHeaderTimeout
	cfg.WriteTimeout = h.writeTimeout
	cfg.MaxConnsPerAgent = h.maxConnsPerAgent
}
