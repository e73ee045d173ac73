package redisstore

import (
	"context"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Batcher tuning: two workers (one round trip in flight while the next
// batch gathers), at most maxBatch calls per script call or pipeline.
const (
	batchWorkers = 2
	maxBatch     = 128
)

// batcher coalesces concurrent rate-limit calls. Each worker takes one
// queued call, drains what else is queued (without waiting), and sends
// them all in one round trip: one gcraBatchScript call, or on Cluster a
// pipeline of gcraScript calls. Calls never wait for a
// batch to fill: an idle store sends each call at once.
type batcher struct {
	s    *Store
	reqs chan *gcraCall
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

type gcraCall struct {
	key      string
	interval int64
	burst    int
	done     chan gcraResult // buffered: the worker never blocks on a caller that left
}

type gcraResult struct {
	v   []int64
	err error
}

func newBatcher(s *Store) *batcher {
	b := &batcher{s: s, reqs: make(chan *gcraCall, 1024), stop: make(chan struct{})}
	for range batchWorkers {
		b.wg.Add(1)
		go b.run()
	}
	return b
}

func (b *batcher) close() {
	b.once.Do(func() { close(b.stop) })
	b.wg.Wait()
}

// do queues one call and waits for its answer or ctx.
func (b *batcher) do(ctx context.Context, key string, interval int64, burst int) ([]int64, error) {
	c := &gcraCall{key: key, interval: interval, burst: burst, done: make(chan gcraResult, 1)}
	select {
	case b.reqs <- c:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-b.stop:
		return nil, b.s.fail("ratelimit", fmt.Errorf("store closed"))
	}
	select {
	case r := <-c.done:
		return r.v, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (b *batcher) run() {
	defer b.wg.Done()
	batch := make([]*gcraCall, 0, maxBatch)
	for {
		select {
		case <-b.stop:
			return
		case c := <-b.reqs:
			batch = append(batch[:0], c)
		}
	drain:
		for len(batch) < maxBatch {
			select {
			case c := <-b.reqs:
				batch = append(batch, c)
			default:
				break drain
			}
		}
		b.send(batch)
	}
}

// send runs batch as one pipeline; a script cache miss (Redis restarted)
// loads the script and sends the batch once more.
func (b *batcher) send(batch []*gcraCall) {
	ctx := context.Background()
	if !b.s.cluster {
		b.script(ctx, batch)
		return
	}
	cmds, err := b.pipeline(ctx, batch)
	if isNoScript(err) {
		if lerr := gcraScript.Load(ctx, b.s.rdb).Err(); lerr == nil {
			cmds, err = b.pipeline(ctx, batch)
		}
	}
	for i, c := range batch {
		var r gcraResult
		if cmds == nil {
			r.err = b.s.fail("ratelimit", err)
		} else if v, cerr := cmds[i].Int64Slice(); cerr != nil {
			r.err = b.s.fail("ratelimit", cerr)
		} else if len(v) != 2 {
			r.err = b.s.fail("ratelimit", fmt.Errorf("gcra script answered %d values, want 2", len(v)))
		} else {
			b.s.ok()
			r.v = v
		}
		c.done <- r
	}
}

func (b *batcher) pipeline(ctx context.Context, batch []*gcraCall) ([]*redis.Cmd, error) {
	pipe := b.s.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(batch))
	for i, c := range batch {
		cmds[i] = gcraScript.EvalSha(ctx, pipe, []string{c.key}, c.interval, c.burst)
	}
	_, err := pipe.Exec(ctx)
	if err != nil {
		for _, c := range cmds {
			if isNoScript(c.Err()) {
				return cmds, c.Err()
			}
		}
		// Per-command errors are read per call; a connection error
		// fails them all alike.
		allFailed := true
		for _, c := range cmds {
			if c.Err() == nil {
				allFailed = false
			}
		}
		if allFailed {
			return nil, err
		}
	}
	return cmds, nil
}

// script decides batch in one gcraBatchScript call (Run falls back from
// EVALSHA to EVAL after a Redis restart).
func (b *batcher) script(ctx context.Context, batch []*gcraCall) {
	keys := make([]string, len(batch))
	args := make([]any, 0, 2*len(batch))
	for i, c := range batch {
		keys[i] = c.key
		args = append(args, c.interval, c.burst)
	}
	v, err := gcraBatchScript.Run(ctx, b.s.rdb, keys, args...).Int64Slice()
	if err == nil && len(v) != 2*len(batch) {
		err = fmt.Errorf("gcra batch script answered %d values, want %d", len(v), 2*len(batch))
	}
	err = b.s.fail("ratelimit", err)
	for i, c := range batch {
		if err != nil {
			c.done <- gcraResult{err: err}
		} else {
			c.done <- gcraResult{v: v[2*i : 2*i+2]}
		}
	}
}
