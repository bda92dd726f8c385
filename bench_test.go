package xdrretry

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkSuccess compares the success path of the bare transport with
// the same transport under xdrretry, over one loopback server. Compare the
// two with benchstat:
//
//	go test -run '^$' -bench Success -count 10 . > bench.txt
//	benchstat -col /transport bench.txt
func BenchmarkSuccess(b *testing.B) {
	body := strings.Repeat("x", 1024)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
	}))
	defer srv.Close()

	base := srv.Client().Transport
	for _, tc := range []struct {
		name string
		rt   http.RoundTripper
	}{
		{"bare", base},
		{"xdrretry", New(base)},
	} {
		b.Run("transport="+tc.name, func(b *testing.B) {
			client := &http.Client{Transport: tc.rt}
			b.ReportAllocs()
			for b.Loop() {
				resp, err := client.Get(srv.URL + "/api/alerts")
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}
