package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/client"
)

// Environment variables that stand in for the flags of the same meaning. A flag given on
// the command line wins over its variable.
const (
	envServer   = "VERITY_SERVER"
	envPassword = "VERITY_PASSWORD"
	envToken    = "VERITY_TOKEN"
)

// storeAbout is the paragraph of the --help of append, read and tail that explains --server.
const storeAbout = `
It works on the local data directory (--data), or on a server with --server URL (or
VERITY_SERVER): http://HOST:PORT or HOST:PORT for plaintext (e.g. 'verity dev'),
https://HOST:PORT for TLS. Output, filters and expected revisions behave the same either
way. Give credentials with --user NAME and the password in VERITY_PASSWORD (preferred:
--password shows in the process list and the shell's history), or a bearer token with
VERITY_TOKEN (or --token).`

// storeFlags are the flags that choose the store a command works on: the embedded engine
// in a local data directory (--data), or a server (--server) with its CA and credentials.
type storeFlags struct {
	cmd      string
	fs       *flagSet
	data     *string
	server   *string
	ca       *string
	user     *string
	password *string
	token    *string
	// lookupEnv reads the environment; tests replace it.
	lookupEnv func(string) (string, bool)
}

// addStoreFlags defines --data, --server, --ca, --user, --password and --token on fs.
func addStoreFlags(fs *flagSet) *storeFlags {
	f := &storeFlags{cmd: fs.Name(), fs: fs, lookupEnv: os.LookupEnv}
	f.data = dataFlag(fs)
	// No flag's default comes from the environment: --help prints defaults, and a password
	// or token must never end up on a terminal or in a log that way.
	f.server = fs.String("server", "", "work against the server at `URL` instead of --data: http://HOST:PORT\nor HOST:PORT (plaintext), https://HOST:PORT (TLS); default $"+envServer)
	f.ca = fs.String("ca", "", "trust the CA certificate in `FILE` (PEM) for an https:// server,\ninstead of the system's roots")
	f.user = fs.String("user", "", "authenticate to the server as user `NAME`, with the password from $"+envPassword+"\nor --password")
	f.password = fs.String("password", "", "the `PASSWORD` of --user; prefer $"+envPassword+", as a flag shows in the\nprocess list and the shell's history")
	f.token = fs.String("token", "", "authenticate to the server with a bearer `TOKEN`; prefer $"+envToken)
	return f
}

// given reports whether the flag name was set on the command line.
func (f *storeFlags) given(name string) bool {
	set := false
	f.fs.Visit(func(fl *flag.Flag) {
		if fl.Name == name {
			set = true
		}
	})
	return set
}

// env returns the environment variable name, "" when unset.
func (f *storeFlags) env(name string) string {
	v, _ := f.lookupEnv(name)
	return v
}

// remote is what --server and the credentials resolve to.
type remote struct {
	url    string // as the user gave it, for messages
	target string // for client.Dial: http://host:port or https://host:port
	opts   client.Options
	secure bool
	host   string
}

// resolve checks the flags (after parsing) and returns the server to use, nil for the local
// data directory. A wrong combination or value is a *usageError.
func (f *storeFlags) resolve() (*remote, error) {
	server := *f.server
	if server == "" && !f.given("data") {
		// An explicit --data wins over the environment's server; an explicit --server with
		// --data is a contradiction.
		server = f.env(envServer)
	}
	if server == "" {
		for _, name := range []string{"ca", "user", "password", "token"} {
			if f.given(name) {
				return nil, usagef(f.cmd, "--%s is for a server: give --server URL (a local --data directory needs no credentials)", name)
			}
		}
		return nil, nil
	}
	if f.given("data") && f.given("server") {
		return nil, usagef(f.cmd, "give either --server %s or --data %s, not both", server, *f.data)
	}
	r, err := parseServerURL(server)
	if err != nil {
		return nil, &usageError{cmd: f.cmd, err: err}
	}

	// Credentials: flags win over the environment; two kinds of credentials on the command
	// line are a contradiction.
	user, password, token := *f.user, *f.password, *f.token
	switch {
	case user != "" && f.given("token"):
		return nil, usagef(f.cmd, "give either --user (with a password) or --token, not both")
	case f.given("password") && user == "":
		return nil, usagef(f.cmd, "--password needs --user NAME")
	case strings.Contains(user, ":"):
		return nil, usagef(f.cmd, "--user %q contains ':', which basic authentication cannot carry", user)
	}
	if user != "" {
		if !f.given("password") {
			password = f.env(envPassword)
		}
		if password == "" {
			return nil, usagef(f.cmd, "--user %s needs a password: set %s (preferred) or give --password", user, envPassword)
		}
		r.opts.Username, r.opts.Password = user, password
	} else {
		if token == "" {
			token = f.env(envToken)
		}
		r.opts.Token = token
	}

	if *f.ca != "" {
		if !r.secure {
			return nil, usagef(f.cmd, "--ca %s is for a TLS server, but %s is plaintext; use https://%s", *f.ca, server, r.host)
		}
		pem, err := os.ReadFile(*f.ca)
		if err != nil {
			return nil, usagef(f.cmd, "--ca: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, usagef(f.cmd, "--ca %s holds no PEM certificate", *f.ca)
		}
		r.opts.TLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return r, nil
}

// parseServerURL parses --server: http://HOST[:PORT] (port 80 by default), https://HOST[:PORT]
// (443) or HOST:PORT (plaintext).
func parseServerURL(s string) (*remote, error) {
	r := &remote{url: s}
	hostport := s
	if i := strings.Index(s, "://"); i >= 0 {
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("--server %q is not a URL: %v", s, err)
		}
		switch u.Scheme {
		case "http":
		case "https":
			r.secure = true
		default:
			return nil, fmt.Errorf("--server %q: unknown scheme %q; want http://HOST:PORT, https://HOST:PORT or HOST:PORT", s, u.Scheme)
		}
		switch {
		case u.User != nil:
			return nil, fmt.Errorf("--server %q: give credentials with --user and %s, not in the URL", u.Redacted(), envPassword)
		case u.Path != "" && u.Path != "/", u.RawQuery != "", u.Fragment != "":
			return nil, fmt.Errorf("--server %q: want only a scheme, a host and a port, e.g. http://127.0.0.1:2113", s)
		case u.Host == "":
			return nil, fmt.Errorf("--server %q has no host; want e.g. http://127.0.0.1:2113", s)
		}
		hostport = u.Host
		if u.Port() == "" {
			port := "80"
			if r.secure {
				port = "443"
			}
			hostport = net.JoinHostPort(u.Hostname(), port)
		}
	}
	host, port, err := net.SplitHostPort(hostport)
	if err == nil {
		_, err = strconv.ParseUint(port, 10, 16)
	}
	if err != nil || host == "" {
		return nil, fmt.Errorf("--server %q: want http://HOST:PORT, https://HOST:PORT or HOST:PORT, e.g. http://127.0.0.1:2113", s)
	}
	r.host = hostport
	scheme := "http://"
	if r.secure {
		scheme = "https://"
	}
	r.target = scheme + hostport
	return r, nil
}

// commandStore is the store a command works on, with the server's URL when it is one.
type commandStore struct {
	verity.Store
	remote *remote // nil for the local engine
}

// open returns the store the flags name: a client of the server, or the engine in --data
// (created when create is set; see openEngine). Dialing does not connect: an unreachable
// server shows at the first call, and finish explains it.
func (f *storeFlags) open(create bool, stderr io.Writer) (*commandStore, error) {
	r, err := f.resolve()
	if err != nil {
		return nil, err
	}
	if r == nil {
		e, err := openEngine(*f.data, create, stderr)
		if err != nil {
			return nil, err
		}
		return &commandStore{Store: e}, nil
	}
	if !r.secure && (r.opts.Password != "" || r.opts.Token != "") && !isLoopback(r.host) {
		fmt.Fprintf(stderr, "verity: warning: sending credentials in plaintext to %s; use https:// unless a TLS proxy is in between\n", r.url)
	}
	c, err := client.Dial(r.target, r.opts)
	if err != nil {
		return nil, &usageError{cmd: f.cmd, err: err}
	}
	return &commandStore{Store: c, remote: r}, nil
}

// isLoopback reports whether hostport names this machine.
func isLoopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// finish closes the store and returns err, the command's result, explained for a server
// (see explain), joined with Close's error.
func (s *commandStore) finish(err error) error {
	return errors.Join(s.explain(err), s.Close())
}

// explain adds to the errors of a server what to do about them: an unreachable server, a
// TLS mismatch, something other than a Verity server answering, missing or wrong
// credentials. Errors of a local store, and those the
// server's store returned (conflicts, not found, ...), are returned unchanged.
func (s *commandStore) explain(err error) error {
	var ve *verity.Error
	if s.remote == nil || err == nil || !errors.As(err, &ve) {
		return err
	}
	r := s.remote
	switch ve.Kind {
	case verity.Unavailable:
		// The client's append sessions report a failed dial as "cannot reach the server"
		// under the operation's name; anything else with an operation is the server's own
		// answer (its store closed or not ready), whose message says what happened.
		sessionDial := strings.HasPrefix(ve.Message, "cannot reach the server: ")
		if ve.Op != "" && !sessionDial {
			return err
		}
		// gRPC's own status: the connection failed, or broke.
		hint := "is it running? For development, start one with 'verity dev'"
		msg := ve.Message
		if sessionDial {
			msg = strings.TrimSuffix(strings.TrimPrefix(msg, "cannot reach the server: "), "; nothing was appended")
			hint = "nothing was appended; " + hint
		}
		switch {
		case strings.Contains(msg, "certificate"):
			hint = "its TLS certificate is not trusted: give its CA with --ca FILE"
			if r.opts.TLS != nil {
				hint = "its TLS certificate does not verify against --ca"
			}
		case strings.Contains(msg, "first record does not look like a TLS handshake"):
			hint = "it does not speak TLS: use http://" + r.host
		case !r.secure && (strings.Contains(msg, "preface") || strings.Contains(msg, "EOF") || strings.Contains(msg, "reset")):
			hint = "is it running? If it uses TLS, use https://" + r.host + "; for development, start one with 'verity dev'"
		}
		return &verity.Error{Kind: verity.Unavailable, Op: ve.Op,
			Message: fmt.Sprintf("cannot reach the server at %s: %s; %s", r.url, msg, hint)}
	case verity.Internal:
		if ve.Op != "" || ve.Err != nil {
			return err // the server's own
		}
		// A status with no Verity error in it: something else answered (another HTTP
		// service, a proxy) or the connection broke mid-call.
		return &verity.Error{Kind: verity.Internal,
			Message: fmt.Sprintf("unexpected answer from the server at %s: %s; is that a Verity server ('verity serve', 'verity dev') and the URL right?", r.url, ve.Message)}
	case verity.Unauthenticated:
		hint := fmt.Sprintf("pass --user NAME with the password in %s (or --password), or a token with --token or %s", envPassword, envToken)
		switch {
		case r.opts.Username != "":
			hint = fmt.Sprintf("check --user %s and its password (%s or --password)", r.opts.Username, envPassword)
		case r.opts.Token != "":
			hint = fmt.Sprintf("check the token (--token or %s)", envToken)
		}
		return &verity.Error{Kind: verity.Unauthenticated, Op: ve.Op, Stream: ve.Stream,
			Message: fmt.Sprintf("the server at %s refused the request: %s; %s", r.url, ve.Message, hint), Err: ve.Err}
	}
	return err
}
