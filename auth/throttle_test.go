package auth

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/verity-dev/verity"
)

func TestWrongPasswordsLockTheUserNameForAWhile(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	svc := openService(t, newStore(t), Config{Now: clk.Now, MaxFailedLogins: 3, FailedLoginWindow: time.Minute})
	mustNil(t, svc.CreateUser(ctx, admin, "bob", "bob-pw", nil))
	mustNil(t, svc.CreateUser(ctx, admin, "carl", "carl-pw", nil))

	// A client that signed in before the guessing is served from the credential cache.
	_, err := svc.Authenticate(ctx, basic("carl", "carl-pw"))
	mustNil(t, err)

	for _, user := range []string{"bob", "carl", "nobody"} {
		for i := range 3 {
			_, err := svc.Authenticate(ctx, basic(user, fmt.Sprint("guess-", i)))
			wantKind(t, err, verity.Unauthenticated)
		}
		if user == "carl" {
			continue // checked below
		}
		// Locked: even the right password is refused, a name that does not exist the same way.
		_, err := svc.Authenticate(ctx, basic(user, user+"-pw"))
		wantKind(t, err, verity.ResourceExhausted)
		if !strings.Contains(err.Error(), "try again in 1m0s") {
			t.Errorf("%s locked: %v, want it to say when to try again", user, err)
		}
	}
	if _, err := svc.Authenticate(ctx, basic("carl", "carl-pw")); err != nil {
		t.Errorf("carl's cached credentials during the lock: %v, want them to pass", err)
	}
	if _, err := svc.Authenticate(ctx, basic("carl", "another-guess")); verity.KindOf(err) != verity.ResourceExhausted {
		t.Errorf("a guess at carl's password during the lock: %v, want it refused unchecked", err)
	}

	// Past the window the name is free again, and a right password clears the count.
	clk.Advance(time.Minute)
	for range 2 {
		_, err := svc.Authenticate(ctx, basic("bob", "wrong"))
		wantKind(t, err, verity.Unauthenticated)
	}
	_, err = svc.Authenticate(ctx, basic("bob", "bob-pw"))
	mustNil(t, err)
	for range 2 {
		_, err := svc.Authenticate(ctx, basic("bob", "wrong"))
		wantKind(t, err, verity.Unauthenticated)
	}
	if _, err := svc.Authenticate(ctx, basic("bob", "bob-pw")); err != nil {
		t.Errorf("two wrong passwords after a right one: %v, want no lock yet", err)
	}

	// Failures further apart than the window do not add up.
	for range 5 {
		_, err := svc.Authenticate(ctx, basic("nobody-else", "wrong"))
		wantKind(t, err, verity.Unauthenticated)
		clk.Advance(31 * time.Second)
	}
}

func TestTheLoginThrottleCanBeTurnedOff(t *testing.T) {
	ctx := context.Background()
	svc := openService(t, newStore(t), Config{MaxFailedLogins: -1})
	mustNil(t, svc.CreateUser(ctx, admin, "bob", "bob-pw", nil))
	for range 20 {
		_, err := svc.Authenticate(ctx, basic("bob", "wrong"))
		wantKind(t, err, verity.Unauthenticated)
	}
	_, err := svc.Authenticate(ctx, basic("bob", "bob-pw"))
	mustNil(t, err)
}

func TestTheLoginThrottleHoldsBoundedMemory(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	th := newLoginThrottle(2, time.Minute)
	th.failed("victim", now)
	th.failed("victim", now) // locked
	for i := range 3 * maxThrottled {
		th.failed(fmt.Sprint("spray-", i), now)
	}
	if n := len(th.m); n > maxThrottled {
		t.Fatalf("the throttle tracks %d names, want at most %d", n, maxThrottled)
	}
	if err := th.check("victim", now.Add(time.Second)); verity.KindOf(err) != verity.ResourceExhausted {
		t.Fatalf("a sprayed flood of names lifted the victim's lock: %v", err)
	}
}

// A client starting many calls at once with its right password, before the first is
// remembered, is not taken for a guesser: the same credentials checked at once share one
// check.
func TestABurstOfRightPasswordsIsNotThrottled(t *testing.T) {
	ctx := context.Background()
	svc := openService(t, newStore(t), Config{MaxFailedLogins: 3})
	mustNil(t, svc.CreateUser(ctx, admin, "bob", "bob-pw", nil))
	errs := make(chan error, 32)
	start := make(chan struct{})
	for range cap(errs) {
		go func() {
			<-start
			_, err := svc.Authenticate(ctx, basic("bob", "bob-pw"))
			errs <- err
		}()
	}
	close(start)
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Errorf("a right password in a burst: %v", err)
		}
	}
}
