package auth

import (
	"sync"
	"time"

	"github.com/verity-dev/verity"
)

// maxThrottled bounds how many user names the login throttle tracks at once.
const maxThrottled = 10_000

// loginThrottle slows password guessing. After Config.MaxFailedLogins wrong passwords for
// one user name within Config.FailedLoginWindow, that name's password checks are refused,
// without a bcrypt comparison, for FailedLoginWindow; then the count starts again. Names
// that exist and names that do not are throttled alike, so a refusal does not tell which.
// A client whose right password is in the credential cache is not held back: the cache
// is looked at first, so a running service rides out a guesser locking its name.
type loginThrottle struct {
	max    int
	window time.Duration

	mu sync.Mutex
	m  map[string]*failures
}

type failures struct {
	n       int       // wrong passwords since first
	first   time.Time // the first of them
	locked  time.Time // refused until then, once n reached max
	pending int       // checks let through whose password is still being compared
}

func newLoginThrottle(max int, window time.Duration) *loginThrottle {
	if max <= 0 {
		return nil
	}
	return &loginThrottle{max: max, window: window, m: map[string]*failures{}}
}

// check refuses a password check for user while its name is locked, or while the checks
// already let through would lock it if they all failed: guesses sent at once all reach
// check before the first of them is found wrong, and each must count. Every check that
// returns nil is to be followed by failed or succeeded.
func (t *loginThrottle) check(user string, now time.Time) error {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok := t.m[user]
	if ok && now.Before(f.locked) {
		return tooManyWrongPasswords(f.locked.Sub(now))
	}
	if !ok {
		if len(t.m) >= maxThrottled && !t.makeRoom(now) {
			return nil // as in failed: untracked until a tracked name expires
		}
		f = &failures{}
		t.m[user] = f
	}
	n := f.n
	if n > 0 && (now.Sub(f.first) >= t.window || now.Before(f.first)) {
		n = 0
	}
	if n+f.pending >= t.max {
		return tooManyWrongPasswords(t.window)
	}
	f.pending++
	return nil
}

func tooManyWrongPasswords(wait time.Duration) error {
	return verity.Errorf(verity.ResourceExhausted, "authenticate",
		"too many wrong passwords for this user name; try again in %s", max(wait.Round(time.Second), time.Second))
}

// failed counts a wrong password for user; the max-th within the window locks the name.
func (t *loginThrottle) failed(user string, now time.Time) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok := t.m[user]
	if !ok {
		if len(t.m) >= maxThrottled && !t.makeRoom(now) {
			return // every name tracked is locked: this one goes untracked until one expires
		}
		f = &failures{}
		t.m[user] = f
	}
	if f.pending > 0 {
		f.pending--
	}
	if f.n == 0 || now.Sub(f.first) >= t.window || now.Before(f.first) {
		f.n, f.first = 0, now
	}
	f.n++
	if f.n >= t.max {
		f.n, f.locked = 0, now.Add(t.window)
	}
}

// succeeded forgets user's wrong passwords.
func (t *loginThrottle) succeeded(user string) {
	if t == nil {
		return
	}
	t.mu.Lock()
	delete(t.m, user)
	t.mu.Unlock()
}

// makeRoom drops the names that are neither locked nor within a window of failures, and
// reports whether any room was made.
func (t *loginThrottle) makeRoom(now time.Time) bool {
	before := len(t.m)
	for user, f := range t.m {
		if !now.Before(f.locked) && now.Sub(f.first) >= t.window && f.pending == 0 {
			delete(t.m, user)
		}
	}
	if len(t.m) == before {
		// Names still counting failures but not locked go before locked ones.
		for user, f := range t.m {
			if !now.Before(f.locked) {
				delete(t.m, user)
			}
		}
	}
	return len(t.m) < before
}
