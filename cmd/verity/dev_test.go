package main

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

func TestDevRunsTheShopBehindTheGateway(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	stdout, stderr := newSyncBuffer(), newSyncBuffer()
	done := make(chan error, 1)
	go func() {
		done <- runDev(ctx, []string{"--data", t.TempDir(), "--listen", "127.0.0.1:0", "--gateway", "127.0.0.1:0", "--admin", "127.0.0.1:0"}, stdout, stderr)
	}()
	out := stdout.waitFor(t, "the dev help with the gateway's URL", func(s string) bool { return strings.Contains(s, "Drive traffic") })
	gw := regexp.MustCompile(`Gateway \(public API\):\s+(\S+)/api/`).FindStringSubmatch(out)
	admin := regexp.MustCompile(`Read models:\s+(\S+)/views`).FindStringSubmatch(out)
	if gw == nil || admin == nil {
		t.Fatalf("no gateway or admin URL in:\n%s", out)
	}

	resp, err := http.Post(gw[1]+"/api/customers", "application/json", strings.NewReader(`{"name":"Ada","email":"ada@example.com"}`))
	if err != nil {
		t.Fatal(err)
	}
	var c struct{ CustomerID string }
	json.NewDecoder(resp.Body).Decode(&c)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || c.CustomerID == "" {
		t.Fatalf("POST /api/customers through the gateway: %d %+v", resp.StatusCode, c)
	}
	resp, err = http.Get(admin[1] + "/views")
	if err != nil {
		t.Fatal(err)
	}
	var views struct{ Views []struct{ Name string } }
	json.NewDecoder(resp.Body).Decode(&views)
	resp.Body.Close()
	if len(views.Views) != 2 {
		t.Errorf("GET /views: %+v, want orders_overview and sales_by_day", views)
	}

	// The console reaches the read models through the server.
	srv := regexp.MustCompile(`running on (http://\S+) `).FindStringSubmatch(out)
	if srv == nil {
		t.Fatalf("no server URL in:\n%s", out)
	}
	resp, err = http.Get(srv[1] + "/ui/platform/views")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /ui/platform/views on the server: %d, want the consolidator's answer", resp.StatusCode)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("dev stopped with %v; stderr:\n%s", err, stderr.String())
	}
}

func TestDevServesOnLoopbackOnly(t *testing.T) {
	for _, flag := range []string{"--listen", "--gateway", "--admin"} {
		_, _, err := runCmd(t, runDev, "--data", t.TempDir(), flag, "0.0.0.0:0")
		wantUsageError(t, err)
	}
}
