package customers

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/verity-dev/verity/examples/shop/internal/shoptest"
)

func startService(t *testing.T) (*Service, string) {
	t.Helper()
	store, groups := shoptest.Open(t)
	s, err := New(Config{Store: store, Groups: groups, Logger: shoptest.Quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s, "http://" + s.Addr()
}

func TestCustomersHTTP(t *testing.T) {
	_, url := startService(t)
	var ann Customer
	shoptest.Call(t, "POST", url+"/customers", map[string]string{"name": "Ann", "email": "ann@example.com"}, http.StatusCreated, &ann)
	if ann.CustomerID == "" || ann.Name != "Ann" {
		t.Fatalf("POST /customers = %+v", ann)
	}
	t.Run("a customer is served by id", func(t *testing.T) {
		var got Customer
		shoptest.Call(t, "GET", url+"/customers/"+ann.CustomerID, nil, http.StatusOK, &got)
		if got != ann {
			t.Errorf("GET = %+v, want %+v", got, ann)
		}
	})
	t.Run("a customer is updated", func(t *testing.T) {
		var got Customer
		shoptest.Call(t, "PUT", url+"/customers/"+ann.CustomerID, map[string]string{"name": "Ann B", "email": "ann@example.com"}, http.StatusOK, &got)
		shoptest.Call(t, "GET", url+"/customers/"+ann.CustomerID, nil, http.StatusOK, &got)
		if got.Name != "Ann B" {
			t.Errorf("after PUT, GET = %+v", got)
		}
	})
	t.Run("the list shows every customer", func(t *testing.T) {
		shoptest.Call(t, "POST", url+"/customers", map[string]string{"name": "Bob", "email": "bob@example.com"}, http.StatusCreated, nil)
		shoptest.Eventually(t, 10*time.Second, "both customers listed", func() bool {
			var list []Customer
			shoptest.Call(t, "GET", url+"/customers", nil, http.StatusOK, &list)
			return len(list) == 2 && list[0].Name == "Ann B" && list[1].Name == "Bob"
		})
	})
	t.Run("a POST retried with its Idempotency-Key makes one customer", func(t *testing.T) {
		var ids []string
		for range 2 {
			req, err := http.NewRequest("POST", url+"/customers", strings.NewReader(`{"name":"Cy","email":"cy@example.com"}`))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Idempotency-Key", "cy-1")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var c Customer
			err = json.NewDecoder(resp.Body).Decode(&c)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusCreated {
				t.Fatalf("POST: status %d, %v", resp.StatusCode, err)
			}
			ids = append(ids, c.CustomerID)
		}
		if ids[0] != ids[1] {
			t.Errorf("the retry made customer %s, the first try %s", ids[1], ids[0])
		}
	})
	for _, c := range []struct {
		name, method, path string
		body               any
		want               int
	}{
		{"an unknown customer is not found", "GET", "/customers/0e0c6a4e-29c5-4b7e-9b0c-1f6f2f9f4a11", nil, http.StatusNotFound},
		{"a malformed id is invalid", "GET", "/customers/nope", nil, http.StatusBadRequest},
		{"a bad email is invalid", "POST", "/customers", map[string]string{"name": "X", "email": "x"}, http.StatusBadRequest},
		{"an unknown field is invalid", "POST", "/customers", `{"name":"X","email":"x@example.com","age":3}`, http.StatusBadRequest},
		{"a malformed body is invalid", "POST", "/customers", `{"name":`, http.StatusBadRequest},
		{"updating an unknown customer is not found", "PUT", "/customers/0e0c6a4e-29c5-4b7e-9b0c-1f6f2f9f4a11", map[string]string{"name": "X", "email": "x@example.com"}, http.StatusNotFound},
		{"the health check answers", "GET", "/healthz", nil, http.StatusOK},
	} {
		t.Run(c.name, func(t *testing.T) { shoptest.Call(t, c.method, url+c.path, c.body, c.want, nil) })
	}
}
