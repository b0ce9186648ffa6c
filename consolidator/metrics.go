package consolidator

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// collector reports every projection's status when scraped: it reads the checkpoints
// and the head of the log then, so the numbers are never stale and cost nothing between
// scrapes.
type collector struct {
	c                            *Consolidator
	position, lagEvents, lagSecs *prometheus.Desc
	errors, up                   *prometheus.Desc
}

func newCollector(c *Consolidator) *collector {
	l := []string{"projection"}
	return &collector{
		c:         c,
		position:  prometheus.NewDesc("verity_consolidator_position", "Log position up to which the projection's tables have applied the log.", l, nil),
		lagEvents: prometheus.NewDesc("verity_consolidator_lag_events", "Head of the log minus the projection's position.", l, nil),
		lagSecs:   prometheus.NewDesc("verity_consolidator_lag_seconds", "Age of the oldest event of the projection not yet applied.", l, nil),
		errors:    prometheus.NewDesc("verity_consolidator_errors_total", "Failed runs and rebuilds of the projection.", l, nil),
		up:        prometheus.NewDesc("verity_consolidator_running", "1 while the projection runs or rebuilds, 0 when failed or stopped.", l, nil),
	}
}

func (m *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.position, m.lagEvents, m.lagSecs, m.errors, m.up} {
		ch <- d
	}
}

func (m *collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, name := range m.c.Names() {
		st, err := m.c.Status(ctx, name)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(m.position, err)
			continue
		}
		up := 0.0
		if st.State == StateRunning || st.State == StateRebuilding {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(m.position, prometheus.GaugeValue, float64(st.Position), name)
		ch <- prometheus.MustNewConstMetric(m.lagEvents, prometheus.GaugeValue, float64(st.LagEvents), name)
		ch <- prometheus.MustNewConstMetric(m.lagSecs, prometheus.GaugeValue, st.LagSeconds, name)
		ch <- prometheus.MustNewConstMetric(m.errors, prometheus.CounterValue, float64(st.Errors), name)
		ch <- prometheus.MustNewConstMetric(m.up, prometheus.GaugeValue, up, name)
	}
}
