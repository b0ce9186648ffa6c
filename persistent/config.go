package persistent

import (
	"fmt"
	"log/slog"
	"time"
)

// Config configures a Manager. The zero value of every field means its default.
type Config struct {
	// Now is the clock for message timeouts and checkpoint timing; default time.Now.
	Now func() time.Time
	// Logger receives the manager's logs; default slog.Default().
	Logger *slog.Logger
	// RetryDelay is how long a group waits before it reads its source again after the store
	// failed it (a subscription ended, a checkpoint could not be read). Default 1 s.
	RetryDelay time.Duration
	// MaxPins bounds how many stream (or correlation) pins a Pinned group remembers; pins of
	// keys with nothing outstanding are forgotten past it. Default 65,536.
	MaxPins int
	// StopTimeout bounds how long a stopping group (Close, RestartGroups, UpdateGroup,
	// DeleteGroup) waits for its store calls, the final checkpoint write included; past it
	// they are cancelled. It is real time, not Now. Default 5 s.
	StopTimeout time.Duration
}

// Defaults of Config.
const (
	DefaultRetryDelay  = time.Second
	DefaultMaxPins     = 1 << 16
	DefaultStopTimeout = 5 * time.Second
)

func (c Config) withDefaults() Config {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.RetryDelay == 0 {
		c.RetryDelay = DefaultRetryDelay
	}
	if c.MaxPins == 0 {
		c.MaxPins = DefaultMaxPins
	}
	if c.StopTimeout == 0 {
		c.StopTimeout = DefaultStopTimeout
	}
	return c
}

// Validate names the first field that is out of range.
func (c Config) Validate() error {
	switch {
	case c.RetryDelay < 0:
		return fmt.Errorf("persistent config: RetryDelay %v is negative", c.RetryDelay)
	case c.MaxPins < 0:
		return fmt.Errorf("persistent config: MaxPins %d is negative", c.MaxPins)
	case c.StopTimeout < 0:
		return fmt.Errorf("persistent config: StopTimeout %v is negative", c.StopTimeout)
	}
	return nil
}
