package main

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/verity-dev/verity/engine"
)

func TestVerifyReportsAnIntactLog(t *testing.T) {
	dir := t.TempDir()
	seedLog(t, dir)
	want := regexp.MustCompile(`^events checked: 5\nlast position:  5\nhead:           [0-9a-f]{64}\nOK\n$`)
	for _, args := range [][]string{{dir}, {"--data", dir}, {"--data", dir, dir}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			out := mustRun(t, runVerify, args...)
			if !want.MatchString(out) {
				t.Errorf("got\n%s\nwant it to match %s", out, want)
			}
		})
	}
}

func TestVerifyFindsTheFirstDamagedEvent(t *testing.T) {
	dir := t.TempDir()
	withEngine(t, dir, func(e *engine.Engine) {
		mustAppend(t, e, "doc-1", jsonEvent("A", `{"n":1}`), jsonEvent("B", `{"marker":"damage-me"}`), jsonEvent("C", `{"n":3}`))
	})
	damaged := false
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if i := bytes.Index(b, []byte("damage-me")); i >= 0 && strings.HasSuffix(path, ".seg") {
			b[i] = 'D' // still well-formed JSON: only the checksum can tell
			damaged = true
			return os.WriteFile(path, b, d.Type().Perm())
		}
		return nil
	})
	if err != nil || !damaged {
		t.Fatalf("could not damage the event in a segment file (found: %v): %v", damaged, err)
	}

	stdout, _, err := runCmd(t, runVerify, dir)
	if err == nil {
		t.Fatal("verify of a damaged log succeeded")
	}
	if code := exitCode(err, &bytes.Buffer{}); code != exitFailure {
		t.Errorf("exit code %d, want %d", code, exitFailure)
	}
	if !strings.Contains(stdout, "FAILED at position 2: ") {
		t.Errorf("stdout does not name position 2 as the first bad one:\n%s", stdout)
	}
}

func TestVerifyOfAMissingDirectoryFails(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	if _, _, err := runCmd(t, runVerify, dir); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("got %v, want an error saying the directory does not exist", err)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Error("verify created the directory")
	}
}

func TestVerifyRejectsBadCommandLines(t *testing.T) {
	dir := t.TempDir()
	for name, args := range map[string][]string{
		"two directories":              {dir, dir},
		"--data and another directory": {"--data", dir, filepath.Join(dir, "other")},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := runCmd(t, runVerify, args...)
			wantUsageError(t, err)
		})
	}
}
