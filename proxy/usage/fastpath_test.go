package usage

import (
	"encoding/json"
	"mime"
	"reflect"
	"testing"
)

func TestMediaTypeSame(t *testing.T) {
	for _, v := range []string{"", "application/json", " Application/JSON ", "text/event-stream", "text/event-stream; charset=utf-8", "a/b/c", "a", "a/", "/b", "a /b", "a/b c", "ä/b", "a@b/c", "text/event-stream;", "x/y\t", "\x00a/b", "a/b=", "a//b"} {
		want, _, _ := mime.ParseMediaType(v)
		if got := mediaType(v); got != want {
			t.Errorf("%q: %q want %q", v, got, want)
		}
	}
}
func FuzzMediaTypeSame(f *testing.F) {
	f.Add("text/event-stream")
	f.Fuzz(func(t *testing.T, v string) {
		want, _, _ := mime.ParseMediaType(v)
		if got := mediaType(v); got != want {
			t.Errorf("%q: %q want %q", v, got, want)
		}
	})
}

// FuzzRequestFieldsSame: the one-pass member scan of a request body finds
// the same raw fields as json.Unmarshal whenever it decides.
func FuzzRequestFieldsSame(f *testing.F) {
	for _, s := range []string{
		`{"model":"gpt-4o","max_tokens":256,"messages":[{"role":"user","content":"hi"}]}`,
		`{"MODEL":"a","model":"b","Stream":true,"stream_options":{"include_usage":false}}`,
		`{"mod\u0065l":"x","max_TOKENS":"12","max_output_tokens":null}`,
		`{"model":1}`, `[]`, `null`, `{"model":"a",}`, ` {"stream" : true } `, `{"ſtream":true}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var got requestFields
		if !scanRequestFields(body, &got) {
			return
		}
		var want requestFields
		if err := json.Unmarshal(body, &want); err != nil {
			t.Fatalf("%q: scanned, but Unmarshal fails: %v", body, err)
		}
		if !reflect.DeepEqual(norm(got), norm(want)) {
			t.Fatalf("%q:\nscan      %+v\nunmarshal %+v", body, norm(got), norm(want))
		}
	})
}

// FuzzIncludesUsageSame: stream_options' include_usage read by walking
// its members is what json.Unmarshal reads.
func FuzzIncludesUsageSame(f *testing.F) {
	for _, s := range []string{
		`{"include_usage":true}`, `{"include_usage":false}`, `{"Include_Usage":true}`, ` { "include_usage" : true } `,
		`{"include_usage":true,"include_usage":false}`, `{"include_usage":false,"INCLUDE_USAGE":true}`,
		`{"include_u\u0073age":true}`, `{"include_uſage":true}`, `{"include_usage":"true"}`, `{"include_usage":1}`,
		`{"include_usage":true,}`, `[]`, `null`, `true`, `{}`, `{"a":{"include_usage":true}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if got, want := includesUsageJSON(raw), includesUsageDecoded(raw); got != want {
			t.Fatalf("%q: walked %v, decoded %v", raw, got, want)
		}
	})
}

func norm(f requestFields) [6]string {
	return [6]string{string(f.Model), string(f.Stream), string(f.MaxTokens), string(f.MaxCompletionTokens),
		string(f.MaxOutputTokens), string(f.StreamOptions)}
}
