package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"time"
)

// newHostLatency measures the first request to each never-seen host: the
// CONNECT, the leaf mint, both TLS handshakes and the request itself. Each
// host gets a fresh client, so nothing is resumed on the agent side.
func (t *target) newHostLatency(hosts []string) (latencies, error) {
	lat := make([]time.Duration, 0, len(hosts))
	start := time.Now()
	for _, h := range hosts {
		c := t.newClient(1)
		t0 := time.Now()
		err := t.get(c, "https://"+h+"/v1/small")
		lat = append(lat, time.Since(t0))
		c.CloseIdleConnections()
		if err != nil {
			return latencies{}, fmt.Errorf("%s: new host %s: %w", t.name, h, err)
		}
	}
	return summarise(lat, time.Since(start), 0), nil
}

// sseFirstEvent measures, over a warm keep-alive connection, the time from
// sending a request to /sse to reading its first event. The upstream sends
// the second event 5 ms later, so a proxy that buffers instead of flushing
// shows up here as +5 ms.
func (t *target) sseFirstEvent(c *http.Client, base string, n int) (latencies, error) {
	if err := t.readFirstEvent(c, base+"/sse", new(time.Duration)); err != nil { // warm the connection
		return latencies{}, err
	}
	lat := make([]time.Duration, n)
	start := time.Now()
	for i := range lat {
		if err := t.readFirstEvent(c, base+"/sse", &lat[i]); err != nil {
			return latencies{}, err
		}
	}
	return summarise(lat, time.Since(start), 0), nil
}

var eventEnd = []byte("\n\n")

func (t *target) readFirstEvent(c *http.Client, u string, d *time.Duration) error {
	t0 := time.Now()
	resp, err := t.send(c, u)
	if err != nil {
		return fmt.Errorf("%s: sse: %w", t.name, err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	var got []byte
	for !bytes.Contains(got, eventEnd) {
		line, err := br.ReadBytes('\n')
		got = append(got, line...)
		if err != nil {
			return fmt.Errorf("%s: sse: no first event: %w", t.name, err)
		}
	}
	*d = time.Since(t0)
	_, err = io.Copy(io.Discard, br)
	return err
}

// throughput downloads /1mib n times, one after another, and returns MiB/s.
func (t *target) throughput(c *http.Client, base string, n int) (float64, error) {
	if err := t.get(c, base+"/1mib"); err != nil { // warm the connection
		return 0, fmt.Errorf("%s: 1mib: %w", t.name, err)
	}
	start := time.Now()
	for range n {
		if err := t.get(c, base+"/1mib"); err != nil {
			return 0, fmt.Errorf("%s: 1mib: %w", t.name, err)
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
