package redisstore

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// subscriber owns the Store's one pub/sub connection, subscribed to the
// approvals and oauth2 channels, and wakes watchers waiting for one
// payload on one channel (an approval id, a credential name). go-redis
// reconnects and resubscribes by itself; messages published while the
// connection was down are lost, which is why every waiter also polls.
type subscriber struct {
	s    *Store
	ps   *redis.PubSub
	stop chan struct{}
	done chan struct{}
	once sync.Once

	mu       sync.Mutex                            // guards watchers
	watchers map[string]map[chan struct{}]struct{} // channel + "\x00" + payload
}

func newSubscriber(s *Store) *subscriber {
	sub := &subscriber{
		s: s, stop: make(chan struct{}), done: make(chan struct{}),
		watchers: map[string]map[chan struct{}]struct{}{},
	}
	sub.ps = s.rdb.Subscribe(context.Background(), s.chanApprovals(), s.chanOAuth2())
	go sub.run(sub.ps.Channel(redis.WithChannelHealthCheckInterval(time.Second), redis.WithChannelSize(1024)))
	return sub
}

func (sub *subscriber) run(ch <-chan *redis.Message) {
	defer close(sub.done)
	for {
		select {
		case <-sub.stop:
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			sub.dispatch(m.Channel, m.Payload)
		}
	}
}

func (sub *subscriber) dispatch(channel, payload string) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	for w := range sub.watchers[channel+"\x00"+payload] {
		select {
		case w <- struct{}{}:
		default: // already signalled
		}
	}
}

// watch returns a channel signalled when payload is published on
// channel, and a func to stop watching.
func (sub *subscriber) watch(channel, payload string) (<-chan struct{}, func()) {
	k := channel + "\x00" + payload
	w := make(chan struct{}, 1)
	sub.mu.Lock()
	if sub.watchers[k] == nil {
		sub.watchers[k] = map[chan struct{}]struct{}{}
	}
	sub.watchers[k][w] = struct{}{}
	sub.mu.Unlock()
	return w, func() {
		sub.mu.Lock()
		delete(sub.watchers[k], w)
		if len(sub.watchers[k]) == 0 {
			delete(sub.watchers, k)
		}
		sub.mu.Unlock()
	}
}

func (sub *subscriber) close() {
	sub.once.Do(func() {
		close(sub.stop)
		_ = sub.ps.Close()
		<-sub.done
	})
}

func (s *Store) chanApprovals() string { return s.key("chan", "approvals") }
func (s *Store) chanOAuth2() string    { return s.key("chan", "oauth2") }
