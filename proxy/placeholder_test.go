package proxy

import (
	"net/http"
	"testing"
)

// BenchmarkPlaceholderHead: detection on a typical request head (no body)
// on a rule without placeholders.
func BenchmarkPlaceholderHead(b *testing.B) {
	s := &Server{}
	req, _ := http.NewRequest("POST", "https://api.openai.com/v1/chat/completions", nil)
	for k, v := range map[string]string{"Content-Type": "application/json", "Authorization": "Bearer sk-agent-placeholder",
		"User-Agent": "OpenAI/Python 1.50.0", "X-Stainless-Lang": "python", "X-Stainless-Os": "Linux",
		"X-Stainless-Package-Version": "1.50.0", "Accept": "application/json", "Openai-Organization": "org-x"} {
		req.Header.Set(k, v)
	}
	d := &decision{}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := s.placeholders(req, d); err != nil {
			b.Fatal(err)
		}
	}
}
