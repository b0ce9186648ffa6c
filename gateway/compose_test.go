package gateway_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// shop starts orders, customers and payments upstreams in the shape of the shop example.
func shop(t testing.TB, e *env) (customersDown func()) {
	t.Helper()
	e.upstream("orders", "o1", func(w http.ResponseWriter, r *http.Request) {
		id := strings.TrimPrefix(r.URL.Path, "/orders/")
		if id != "o-7" {
			http.Error(w, `{"error":"no such order"}`, http.StatusNotFound)
			return
		}
		w.Write([]byte(`{"orderId":"o-7","customerId":"c 1","totalCents":1200}`))
	})
	var down bool
	e.upstream("customers", "c1", func(w http.ResponseWriter, r *http.Request) {
		if down {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		if r.URL.Path != "/customers/c 1" {
			http.Error(w, "unknown "+r.URL.Path, http.StatusNotFound)
			return
		}
		w.Write([]byte(`{"customerId":"c 1","name":"Ada"}`))
	})
	e.upstream("payments", "p1", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"orderId":"o-7","status":"succeeded"}`))
	})
	return func() { down = true }
}

func TestComposition(t *testing.T) {
	const routes = `
defaults: {retries: 0, breaker: {failures: 1000}}
routes:
  - name: details
    match: "GET /api/orders/{id}/details"
    compose:
      mode: %s
      partial: %t
      calls:
        - {name: order, service: orders, path: "/orders/{id}"}
        - {name: customer, service: customers, path: "%s"}
        - {name: payment, service: payments, path: "/payments/{id}", optional: true}
`
	type result struct {
		Order    map[string]any    `json:"order"`
		Customer map[string]any    `json:"customer"`
		Payment  map[string]any    `json:"payment"`
		Partial  bool              `json:"partial"`
		Errors   map[string]string `json:"errors"`
	}
	for _, tc := range []struct {
		name         string
		mode         string
		partial      bool
		customerPath string
		down         bool
		order        string
		wantStatus   int
		wantPartial  bool
	}{
		{"a sequence takes a value from an earlier answer", "sequence", false, "/customers/{order.customerId}", false, "o-7", 200, false},
		{"parallel calls merge their answers", "parallel", false, "/customers/c%201", false, "o-7", 200, false},
		{"partial: a failed call becomes null", "sequence", true, "/customers/{order.customerId}", true, "o-7", 200, true},
		{"all-or-nothing: a failed call fails the request", "sequence", false, "/customers/{order.customerId}", true, "o-7", 502, false},
		{"parallel, all-or-nothing: a failed call fails the request", "parallel", false, "/customers/c%201", true, "o-7", 502, false},
		{"partial: a failed first call fails the request", "sequence", true, "/customers/{order.customerId}", false, "o-404", 404, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			down := shop(t, e)
			if tc.down {
				down()
			}
			_, url := e.gateway(parse(t, fmt.Sprintf(routes, tc.mode, tc.partial, tc.customerPath)))
			a := e.do("GET", url+"/api/orders/"+tc.order+"/details", "")
			if a.status != tc.wantStatus {
				t.Fatalf("status %d %s, want %d", a.status, a.body, tc.wantStatus)
			}
			var got result
			a.json(t, &got)
			if tc.wantStatus != 200 {
				if !strings.Contains(a.body, `"error"`) || len(got.Errors) == 0 {
					t.Errorf("a failed composition says no error: %s", a.body)
				}
				return
			}
			if got.Order["orderId"] != "o-7" || got.Payment["status"] != "succeeded" {
				t.Errorf("answer %s lacks the order or the payment", a.body)
			}
			if got.Partial != tc.wantPartial || (a.header.Get("Verity-Partial") == "true") != tc.wantPartial {
				t.Errorf("partial %v, header %q; want %v", got.Partial, a.header.Get("Verity-Partial"), tc.wantPartial)
			}
			if tc.wantPartial {
				if got.Customer != nil || got.Errors["customer"] == "" || !strings.Contains(a.body, `"customer":null`) {
					t.Errorf("the failed customer call is not null with an error: %s", a.body)
				}
			} else if got.Customer["name"] != "Ada" {
				t.Errorf("customer %v, want Ada: %s", got.Customer, a.body)
			}
		})
	}
}

func TestCompositionOfAnOpenBreakerIs503(t *testing.T) {
	e := newEnv(t)
	shop(t, e)()
	_, url := e.gateway(parse(t, `
defaults: {retries: 0, breaker: {failures: 1, openFor: 1h}}
routes:
  - name: details
    match: "GET /api/orders/{id}/details"
    compose:
      mode: parallel
      calls:
        - {name: customer, service: customers, path: "/customers/{id}"}
`))
	if a := e.do("GET", url+"/api/orders/x/details", ""); a.status != 502 {
		t.Fatalf("first failure: status %d, want 502", a.status)
	}
	a := e.do("GET", url+"/api/orders/x/details", "")
	if a.status != 503 || a.header.Get("Retry-After") == "" {
		t.Errorf("open breaker: status %d Retry-After %q, want 503 with Retry-After", a.status, a.header.Get("Retry-After"))
	}
	var body struct{ Errors map[string]string }
	a.json(t, &body)
	if !strings.Contains(body.Errors["customer"], "circuit breaker is open") {
		t.Errorf("errors %v", body.Errors)
	}
}
