package main

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/elazarl/goproxy"

	"github.com/airlock/airlock/certs"
)

// startBaseline runs the reference point: a bare goproxy MITM doing
// nothing but terminating TLS and forwarding. It gets everything that
// makes goproxy fast: ECDSA P-256 leaves from a bounded cache (the same
// certs.Cache airlock uses, so new-host numbers compare the proxies, not
// the minting), and a tuned transport (many idle connections per host, no
// proxy of its own, TLS session resumption).
func startBaseline(o childOptions) (childHello, func(), error) {
	ca, err := certs.NewCA("airlock-bench baseline", time.Now())
	if err != nil {
		return childHello{}, nil, err
	}
	roots, err := loadRoots(o.upstreamCA)
	if err != nil {
		return childHello{}, nil, err
	}
	leaves := certs.NewCache(ca, 10000)
	gp := goproxy.NewProxyHttpServer()
	gp.Logger = log.New(io.Discard, "", 0)
	gp.Tr = &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        4096,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   true,
		TLSClientConfig:     &tls.Config{RootCAs: roots, ClientSessionCache: tls.NewLRUClientSessionCache(1024)},
	}
	mitm := &goproxy.ConnectAction{Action: goproxy.ConnectMitm, TLSConfig: func(host string, _ *goproxy.ProxyCtx) (*tls.Config, error) {
		h, _, err := net.SplitHostPort(host)
		if err != nil {
			h = host
		}
		cfg := leaves.TLSConfig(h).Clone()
		cfg.NextProtos = []string{"http/1.1"} // goproxy's MITM speaks HTTP/1.1 only
		return cfg, nil
	}}
	gp.OnRequest().HandleConnectFunc(func(host string, _ *goproxy.ProxyCtx) (*goproxy.ConnectAction, string) {
		return mitm, host
	})
	l, err := listenLoopback()
	if err != nil {
		return childHello{}, nil, err
	}
	srv := &http.Server{Handler: gp, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	stop := func() { shutdown(srv.Shutdown) }
	return childHello{Addr: l.Addr().String(), ProxyURL: "http://" + l.Addr().String(), CAPEM: string(ca.CertPEM)}, stop, nil
}

// shutdown calls a server's Shutdown with a 5 s drain.
func shutdown(fn func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = fn(ctx)
}
