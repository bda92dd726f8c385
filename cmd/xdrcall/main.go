// Command xdrcall calls the Defender XDR, Defender for Endpoint or
// Microsoft Graph security API through the xdrretry transport.
//
// With no URL it starts the fake Defender API of package xdrtest on a
// loopback port and runs a short tour: a 500 that heals, a throttled call,
// an expired token that is refreshed, and a 404 that fails fast. It prints
// one line per attempt and a summary.
//
// With a URL it calls that endpoint with the bearer token in XDR_TOKEN and
// prints the response body, or the error with its tracking ID and exit
// status 1:
//
//	XDR_TOKEN=... xdrcall https://api.security.microsoft.com/api/machines
//	XDR_TOKEN=... xdrcall -X POST -d '{"Query":"DeviceInfo | take 5"}' https://api.security.microsoft.com/api/advancedqueries/run
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/xdrretry/xdrretry"
)

// Exit statuses.
const (
	exitOK     = 0
	exitFailed = 1 // the request failed
	exitUsage  = 2 // bad flags or environment
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// config holds the parsed flags.
type config struct {
	method     string
	data       string
	headers    headerFlags
	retries    int
	maxWait    time.Duration
	backoffMin time.Duration
	backoffMax time.Duration
	timeout    time.Duration
	verbose    bool
	scope      string
	authority  string
	url        string
}

// headerFlags collects repeated -H flags.
type headerFlags []string

func (h *headerFlags) String() string     { return strings.Join(*h, ", ") }
func (h *headerFlags) Set(v string) error { *h = append(*h, v); return nil }

// run is main without the process: it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if errors.Is(err, errFlagsReported) {
		return exitUsage
	}
	if err != nil {
		fmt.Fprintf(stderr, "xdrcall: %v\n", err)
		return exitUsage
	}
	if cfg.url == "" {
		return runTour(ctx, cfg, stdout, stderr)
	}
	return runCall(ctx, cfg, stdout, stderr, getenv)
}

// errFlagsReported is the error of flags that the flag set has already
// reported on standard error.
var errFlagsReported = errors.New("invalid flags")

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	cfg := &config{}
	fs := flag.NewFlagSet("xdrcall", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.method, "X", "", "HTTP `method` (default GET, or POST when -d is set)")
	fs.StringVar(&cfg.data, "d", "", "request `body`; @FILE reads the body from FILE")
	fs.Var(&cfg.headers, "H", "extra request `header` as \"Name: value\" (repeatable)")
	fs.IntVar(&cfg.retries, "retries", xdrretry.DefaultMaxRetries, "retries after the first attempt for transient failures (0 or less disables them)")
	fs.DurationVar(&cfg.maxWait, "max-wait", xdrretry.DefaultMaxWait, "longest single wait before a retry; a longer Retry-After fails at once (0 or less keeps the default)")
	fs.DurationVar(&cfg.backoffMin, "backoff", xdrretry.DefaultInitialBackoff, "mean of the first backoff wait (0 or less keeps the default)")
	fs.DurationVar(&cfg.backoffMax, "backoff-max", xdrretry.DefaultMaxBackoff, "cap of every backoff wait (0 or less keeps the default)")
	fs.DurationVar(&cfg.timeout, "timeout", 5*time.Minute, "limit for the whole call, retries and waits included (0 for none)")
	fs.BoolVar(&cfg.verbose, "v", false, "log each retry and give-up to standard error")
	fs.StringVar(&cfg.scope, "scope", "", "OAuth `scope` for AZURE_* credentials (default: from the URL's host, such as https://api.securitycenter.microsoft.com/.default)")
	fs.StringVar(&cfg.authority, "authority", "", "token endpoint base `URL` for AZURE_* credentials (default $AZURE_AUTHORITY_HOST, else https://login.microsoftonline.com)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: xdrcall [flags] [URL]

Without URL, xdrcall starts a fake Defender API on a loopback port and shows
the transport at work: a 500 that heals, a throttled call, an expired token
that is refreshed, and a 404 that fails fast.

With URL, xdrcall sends one request, prints the response body and exits 0,
or prints the error with its tracking ID and exits 1. The token comes from
XDR_TOKEN, or else from AZURE_TENANT_ID, AZURE_CLIENT_ID and
AZURE_CLIENT_SECRET by the client credentials flow, which also refreshes it
after a 401. Exit status 2 means bad flags or missing credentials.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		// The flag set has printed the error and the usage.
		return nil, errFlagsReported
	}
	switch fs.NArg() {
	case 0:
	case 1:
		cfg.url = fs.Arg(0)
	default:
		return nil, fmt.Errorf("expected at most one URL, got %d arguments: %q", fs.NArg(), fs.Args())
	}
	if cfg.method == "" {
		cfg.method = http.MethodGet
		if cfg.data != "" {
			cfg.method = http.MethodPost
		}
	}
	cfg.method = strings.ToUpper(cfg.method)
	return cfg, nil
}

// options returns the transport options that the flags select.
func (cfg *config) options(stderr io.Writer) []xdrretry.Option {
	opts := []xdrretry.Option{
		xdrretry.WithMaxRetries(cfg.retries),
		xdrretry.WithMaxWait(cfg.maxWait),
		xdrretry.WithBackoff(cfg.backoffMin, cfg.backoffMax),
	}
	if cfg.verbose {
		h := slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug})
		opts = append(opts, xdrretry.WithLogger(slog.New(h)))
	}
	return opts
}

// runCall sends one request to a URL that the user gave.
func runCall(ctx context.Context, cfg *config, stdout, stderr io.Writer, getenv func(string) string) int {
	body, err := readBody(cfg.data)
	if err != nil {
		fmt.Fprintf(stderr, "xdrcall: %v\n", err)
		return exitUsage
	}
	if cfg.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, cfg.method, cfg.url, body)
	if err != nil {
		fmt.Fprintf(stderr, "xdrcall: invalid request: %v\n", err)
		return exitUsage
	}
	if (req.URL.Scheme != "https" && req.URL.Scheme != "http") || req.URL.Host == "" {
		fmt.Fprintf(stderr, "xdrcall: invalid URL %q: want an absolute http or https URL, such as https://api.security.microsoft.com/api/alerts\n", cfg.url)
		return exitUsage
	}
	for _, h := range cfg.headers {
		name, value, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(name) == "" {
			fmt.Fprintf(stderr, "xdrcall: invalid header %q: want \"Name: value\"\n", h)
			return exitUsage
		}
		req.Header.Set(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	opts := cfg.options(stderr)
	token := strings.TrimSpace(getenv("XDR_TOKEN"))
	staticToken := token != ""
	if !staticToken {
		creds, err := clientCredentials(cfg, req.URL, getenv)
		if err != nil {
			fmt.Fprintf(stderr, "xdrcall: %v\n", err)
			return exitUsage
		}
		tok, err := creds.Token(ctx)
		if err != nil {
			fmt.Fprintf(stderr, "xdrcall: getting a token from %s: %v\n", creds.TokenURL, err)
			return exitFailed
		}
		token = tok.AccessToken
		opts = append(opts, xdrretry.WithTokenRefresh(xdrretry.RefreshFromTokenFunc(creds.Token)))
	}
	req.Header.Set("Authorization", "Bearer "+token)

	client := &http.Client{Transport: xdrretry.New(nil, opts...)}
	resp, err := client.Do(req)
	if err != nil {
		printError(stderr, err)
		if staticToken && errors.Is(err, xdrretry.ErrRefreshFailed) {
			fmt.Fprintln(stderr, "xdrcall: the service rejected XDR_TOKEN; set a new token, or set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET so that xdrcall can renew it")
		}
		return exitFailed
	}
	defer resp.Body.Close()
	if _, err := io.Copy(stdout, resp.Body); err != nil {
		fmt.Fprintf(stderr, "xdrcall: reading response body: %v\n", err)
		return exitFailed
	}
	if resp.StatusCode >= 300 {
		fmt.Fprintf(stderr, "xdrcall: %s\n", resp.Status)
		return exitFailed
	}
	return exitOK
}

// clientCredentials returns the client credentials flow of the AZURE_*
// variables for the scope of target.
func clientCredentials(cfg *config, target *url.URL, getenv func(string) string) (*clientcredentials.Config, error) {
	tenant, client, secret := getenv("AZURE_TENANT_ID"), getenv("AZURE_CLIENT_ID"), getenv("AZURE_CLIENT_SECRET")
	if tenant == "" || client == "" || secret == "" {
		return nil, errors.New("no credentials: set XDR_TOKEN to an access token, " +
			"or AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET for an app registration")
	}
	authority := cfg.authority
	if authority == "" {
		authority = getenv("AZURE_AUTHORITY_HOST")
	}
	if authority == "" {
		authority = "https://login.microsoftonline.com"
	}
	scope := cfg.scope
	if scope == "" {
		scope = defaultScope(target)
	}
	return &clientcredentials.Config{
		ClientID:     client,
		ClientSecret: secret,
		TokenURL:     strings.TrimSuffix(authority, "/") + "/" + url.PathEscape(tenant) + "/oauth2/v2.0/token",
		Scopes:       []string{scope},
		AuthStyle:    oauth2.AuthStyleInParams,
	}, nil
}

// defaultScope returns the .default scope of the API at u: Graph's for
// Graph hosts, the Defender for Endpoint application's for the Defender
// hosts (api.security.microsoft.com, api.securitycenter.microsoft.com and
// their regional us., eu., uk. and au. forms), and the host's own
// otherwise.
func defaultScope(u *url.URL) string {
	host := strings.ToLower(u.Hostname())
	switch {
	case strings.HasPrefix(host, "graph.microsoft."):
		return "https://" + host + "/.default"
	case strings.HasSuffix(host, "api.security.microsoft.com"),
		strings.HasSuffix(host, "api.securitycenter.microsoft.com"):
		return "https://api.securitycenter.microsoft.com/.default"
	}
	return "https://" + u.Host + "/.default"
}

// readBody returns the request body for -d: the text itself, or the
// contents of a file for @FILE. No -d means no body.
func readBody(data string) (io.Reader, error) {
	if data == "" {
		return nil, nil
	}
	if name, ok := strings.CutPrefix(data, "@"); ok {
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("reading body: %w", err)
		}
		return strings.NewReader(string(b)), nil
	}
	return strings.NewReader(data), nil
}

// printError prints a failed request: the one-line error, then the
// tracking ID on a line of its own for support tickets.
func printError(w io.Writer, err error) {
	var xerr *xdrretry.Error
	if !errors.As(err, &xerr) {
		fmt.Fprintf(w, "xdrcall: %v\n", err)
		return
	}
	// The *Error names the request itself; http.Client's wrapping would
	// name the URL a second time.
	fmt.Fprintf(w, "xdrcall: %v\n", xerr)
	if xerr.TrackingID != "" {
		fmt.Fprintf(w, "tracking ID: %s\n", xerr.TrackingID)
	}
	if xerr.RetryAfter > 0 {
		fmt.Fprintf(w, "retry after: %s\n", xerr.RetryAfter)
	}
}
