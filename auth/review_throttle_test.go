package auth

import (
	"context"
	"testing"
	"time"

	"github.com/verity-dev/verity"
)

// Guesses sent at once all reach check before the first of them fails: each must count,
// or a guesser sending a thousand at a time gets a thousand guesses a window, not ten.
func TestConcurrentGuessesCannotOutrunTheLock(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	th := newLoginThrottle(3, time.Minute)
	for i := range 3 {
		if err := th.check("bob", now); err != nil {
			t.Fatalf("check %d of 3 in flight: %v, want it let through", i+1, err)
		}
	}
	if err := th.check("bob", now); verity.KindOf(err) != verity.ResourceExhausted {
		t.Fatalf("a 4th guess while 3 are being compared: %v, want ResourceExhausted", err)
	}
	for range 3 {
		th.failed("bob", now)
	}
	if err := th.check("bob", now.Add(time.Second)); verity.KindOf(err) != verity.ResourceExhausted {
		t.Fatalf("after 3 wrong passwords: %v, want the name locked", err)
	}

	t.Run("a right password among them clears the count", func(t *testing.T) {
		th := newLoginThrottle(3, time.Minute)
		for range 3 {
			mustNil(t, th.check("carl", now))
		}
		th.failed("carl", now)
		th.succeeded("carl")
		th.failed("carl", now)
		if err := th.check("carl", now); err != nil {
			t.Fatalf("after a right password: %v, want the name free", err)
		}
	})
}

// A running client keeps its right password in the credential cache for CredentialCacheTTL
// only; a guesser who keeps the name locked must not lock it out once that has passed.
func TestARunningClientOutlastsTheCredentialCacheDuringALock(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	svc := openService(t, newStore(t), Config{Now: clk.Now, MaxFailedLogins: 3, FailedLoginWindow: time.Minute, CredentialCacheTTL: time.Minute})
	mustNil(t, svc.CreateUser(ctx, admin, "carl", "carl-pw", nil))
	_, err := svc.Authenticate(ctx, basic("carl", "carl-pw"))
	mustNil(t, err)

	clk.Advance(30 * time.Second)
	for range 3 {
		_, err := svc.Authenticate(ctx, basic("carl", "guess"))
		wantKind(t, err, verity.Unauthenticated)
	}
	clk.Advance(31 * time.Second) // the cache entry has expired; the lock holds for 29 s more
	if _, err := svc.Authenticate(ctx, basic("carl", "carl-pw")); err != nil {
		t.Fatalf("carl's client during the lock, its check 61 s old: %v, want it to pass", err)
	}
	if _, err := svc.Authenticate(ctx, basic("carl", "another-guess")); verity.KindOf(err) != verity.ResourceExhausted {
		t.Fatalf("a guess during the lock: %v, want it refused", err)
	}
	// A new password makes the remembered one worthless.
	mustNil(t, svc.ChangePassword(ctx, admin, "carl", "carl-pw-2"))
	if _, err := svc.Authenticate(ctx, basic("carl", "carl-pw")); verity.KindOf(err) != verity.ResourceExhausted {
		t.Fatalf("the old password during the lock: %v, want it refused", err)
	}
}
