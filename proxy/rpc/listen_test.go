package rpc

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestUnixSocket(t *testing.T) {
	h := newHarness(t, Options{})
	path := filepath.Join(t.TempDir(), "airlock.sock")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ListenUnix(path); err == nil {
		t.Fatal("ListenUnix replaced a regular file")
	}
	os.Remove(path)
	l, err := ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, %v", fi.Mode(), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.srv.ServeListener(ctx, l) }()

	fc := dialClient(t, "unix", path)
	fc.login("bot", h.keys["bot"])
	var res retrieved
	fc.ok("retrieve", fc.with(map[string]any{"path": "db/password", "ttl": 1}), &res)
	fc.ok("release_lease", map[string]any{"lease_id": res.LeaseID}, nil)
	fc.ok("use", useParamsFor(fc, "signing/key", "sign", map[string]any{"data": "x"}), nil)

	// Cancelling closes the listener and the open connection, then returns.
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ServeListener: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ServeListener did not return after cancel")
	}
	if _, err := fc.recv(); !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Logf("read after shutdown: %v", err)
	}
	if _, err := fc.recv(); err == nil {
		t.Fatal("connection still served after shutdown")
	}

	// A stale socket from an earlier run is replaced.
	l2, err := ListenUnix(path)
	if err != nil {
		t.Fatalf("relisten over stale socket: %v", err)
	}
	l2.Close()
}

func TestServeListenerAcceptError(t *testing.T) {
	h := newHarness(t, Options{})
	l, err := ListenUnix(filepath.Join(t.TempDir(), "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if err := h.srv.ServeListener(context.Background(), l); err == nil {
		t.Fatal("ServeListener on a closed listener returned nil")
	}
}
