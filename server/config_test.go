package server

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigPrecedence(t *testing.T) {
	// file < environment < flags, field by field.
	file := filepath.Join(t.TempDir(), "verity.yaml")
	os.WriteFile(file, []byte("data: /from/file\nlisten: 127.0.0.1:3000\ninsecure: true\nshutdown_timeout: 3s\nmax_request_bytes: 4096\n"), 0o644)
	var c Config
	if err := c.LoadFile(file); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"VERITY_LISTEN": "127.0.0.1:4000", "VERITY_SHUTDOWN_TIMEOUT": "4s"}
	if err := c.ApplyEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var f Flags
	f.Register(fs)
	if err := fs.Parse([]string{"--shutdown-timeout", "5s", "--log-level", "debug"}); err != nil {
		t.Fatal(err)
	}
	if err := f.Apply(&c); err != nil {
		t.Fatal(err)
	}
	want := Config{Data: "/from/file", Listen: "127.0.0.1:4000", Insecure: true, ShutdownTimeout: 5 * time.Second,
		MaxRequestBytes: 4096, LogLevel: "debug"}
	if c.Data != want.Data || c.Listen != want.Listen || c.Insecure != want.Insecure ||
		c.ShutdownTimeout != want.ShutdownTimeout || c.MaxRequestBytes != want.MaxRequestBytes || c.LogLevel != want.LogLevel {
		t.Fatalf("config = %+v, want %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}

func TestConfigFileRejectsUnknownKeys(t *testing.T) {
	file := filepath.Join(t.TempDir(), "verity.yaml")
	os.WriteFile(file, []byte("listn: 127.0.0.1:3000\n"), 0o644)
	var c Config
	err := c.LoadFile(file)
	if err == nil || !strings.Contains(err.Error(), "listn") {
		t.Fatalf("LoadFile with a misspelt key: %v, want an error naming it", err)
	}
}

func TestConfigValidateNamesTheBadField(t *testing.T) {
	for _, tt := range []struct {
		name string
		c    Config
		want string
	}{
		{"TLS is required unless insecure", Config{}, "tls_cert"},
		{"insecure and TLS together are refused", Config{Insecure: true, TLSCert: "c", TLSKey: "k"}, "insecure"},
		{"a listen address needs a port", Config{Insecure: true, Listen: "localhost"}, "listen"},
		{"an unknown log level is refused", Config{Insecure: true, LogLevel: "loud"}, "log_level"},
		{"an unknown log format is refused", Config{Insecure: true, LogFormat: "xml"}, "log_format"},
		{"a tiny request limit is refused", Config{Insecure: true, MaxRequestBytes: 10}, "max_request_bytes"},
		{"a CA needs TLS", Config{Insecure: true, TLSCA: "ca.pem"}, "tls_ca"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate(%+v) = %v, want an error naming %s", tt.c, err, tt.want)
			}
		})
	}
	if err := (Config{Insecure: true}).Validate(); err != nil {
		t.Fatalf("the insecure defaults do not validate: %v", err)
	}
}

func TestBadEnvironmentValueIsAnError(t *testing.T) {
	var c Config
	err := c.ApplyEnv(func(k string) (string, bool) {
		if k == "VERITY_MAX_EVENT_SIZE" {
			return "lots", true
		}
		return "", false
	})
	if err == nil || !strings.Contains(err.Error(), "VERITY_MAX_EVENT_SIZE") {
		t.Fatalf("ApplyEnv with a bad number: %v, want an error naming the variable", err)
	}
}
