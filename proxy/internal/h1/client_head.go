package h1

import (
	"bufio"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"slices"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// # Writing a bodiless request head
//
// http.Request.Write costs a transfer writer, a header sorter and
// formatted prints per request. writeHead writes the head of the
// commonest request, a GET or HEAD without a body, trailer or trace,
// byte for byte as Request.Write does (FuzzWriteHead compares the two);
// every other request goes through Request.Write.

// maxFastHeaders is how many header fields writeHead sorts on the stack.
const maxFastHeaders = 32

var headNewlineToSpace = strings.NewReplacer("\n", " ", "\r", " ")

// writeHead writes req's head to bw as Request.Write would; false, with
// nothing written, when req is not one it writes.
func writeHead(bw *bufio.Writer, req *http.Request) bool {
	if (req.Method != http.MethodGet && req.Method != http.MethodHead) ||
		(req.Body != nil && req.Body != http.NoBody) || req.ContentLength != 0 ||
		len(req.TransferEncoding) > 0 || len(req.Trailer) > 0 || req.Close ||
		len(req.Header) > maxFastHeaders || req.URL == nil {
		return false
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if !plainHost(host) {
		return false // Punycode, IPv6 zones, invalid hosts: Request.Write's cases
	}
	ruri := req.URL.RequestURI()
	if stringHasCTL(ruri) {
		return false // Request.Write's error
	}
	if httptrace.ContextClientTrace(req.Context()) != nil {
		return false
	}
	var keysBuf [maxFastHeaders]string
	keys := keysBuf[:0]
	for k := range req.Header {
		switch k {
		case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)

	bw.WriteString(req.Method)
	bw.WriteByte(' ')
	bw.WriteString(ruri)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(host)
	bw.WriteString("\r\n")
	ua := "Go-http-client/1.1"
	if vv, ok := req.Header["User-Agent"]; ok {
		ua = ""
		if len(vv) > 0 {
			ua = vv[0]
		}
	}
	if ua != "" {
		writeField(bw, "User-Agent", ua)
	}
	for _, k := range keys {
		if !httpguts.ValidHeaderFieldName(k) {
			continue // Request.Write drops it
		}
		for _, v := range req.Header[k] {
			writeField(bw, k, v)
		}
	}
	bw.WriteString("\r\n")
	return true
}

// writeField writes "k: v\r\n", v cleaned as Request.Write cleans it.
func writeField(bw *bufio.Writer, k, v string) {
	if strings.ContainsAny(v, "\r\n") {
		v = headNewlineToSpace.Replace(v)
	}
	v = textproto.TrimString(v)
	bw.WriteString(k)
	bw.WriteString(": ")
	bw.WriteString(v)
	bw.WriteString("\r\n")
}

// plainHost: an ASCII host with no IPv6 zone that is a valid Host value,
// which Request.Write sends unchanged.
func plainHost(host string) bool {
	for i := 0; i < len(host); i++ {
		if host[i] >= 0x80 {
			return false
		}
	}
	if strings.HasPrefix(host, "[") && strings.IndexByte(host, '%') >= 0 {
		return false
	}
	return httpguts.ValidHostHeader(host)
}

func stringHasCTL(s string) bool {
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < ' ' || b == 0x7f {
			return true
		}
	}
	return false
}
