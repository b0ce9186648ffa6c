package main

import (
	"path/filepath"
	"regexp"
	"testing"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/engine"
)

func TestScavengeReportsWhatItReclaimedAndKeepsLiveEvents(t *testing.T) {
	dir := t.TempDir()
	seedLog(t, dir)
	withEngine(t, dir, func(e *engine.Engine) {
		if _, err := e.DeleteStream(t.Context(), "order-2", verity.Any()); err != nil {
			t.Fatal(err)
		}
	})
	out := mustRun(t, runScavenge, "--data", dir)
	want := regexp.MustCompile(`^scavenged: \d+ segments? rewritten, \d+ events? removed, (?:\d+ B|\d+\.\d [KMGTPE]iB \(\d+ bytes\)) reclaimed\n$`)
	if !want.MatchString(out) {
		t.Errorf("got %q, want it to match %s", out, want)
	}
	if n := len(readStreamEvents(t, dir, "order-1")); n != 2 {
		t.Errorf("order-1 has %d events after scavenging, want 2", n)
	}
	if out := mustRun(t, runVerify, dir); !regexp.MustCompile(`\nOK\n$`).MatchString(out) {
		t.Errorf("verify after scavenging:\n%s", out)
	}
}

func TestScavengeOfAMissingDirectoryFails(t *testing.T) {
	if _, _, err := runCmd(t, runScavenge, "--data", filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("scavenge of a missing directory succeeded")
	}
}

func TestScavengeRejectsArguments(t *testing.T) {
	_, _, err := runCmd(t, runScavenge, t.TempDir())
	wantUsageError(t, err)
}

func TestByteSizeReadsForPeople(t *testing.T) {
	for n, want := range map[int64]string{
		0:       "0 B",
		1023:    "1023 B",
		1536:    "1.5 KiB (1536 bytes)",
		3 << 20: "3.0 MiB (3145728 bytes)",
		5 << 30: "5.0 GiB (5368709120 bytes)",
	} {
		if got := byteSize(n); got != want {
			t.Errorf("byteSize(%d) = %q, want %q", n, got, want)
		}
	}
}
