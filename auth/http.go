package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/internal/httpjson"
)

// maxBody bounds a request body of the user API; its requests are a few short strings.
const maxBody = 64 << 10

// Handler returns the JSON HTTP API for users and tokens, to be mounted at "/users",
// "/users/", "/tokens" and "/tokens/" of the server's mux. Every request authenticates with
// its Authorization header (Basic or Bearer) and must come from an admin. Endpoints (see
// docs/security.md):
//
//	GET    /users                       list users
//	POST   /users                       {"name","password","roles"}: create a user (201)
//	GET    /users/{name}                one user
//	PATCH  /users/{name}                {"roles":[...],"disabled":bool}: change either
//	DELETE /users/{name}                delete a user and their tokens (204)
//	POST   /users/{name}/password       {"password"}: set a new password (204)
//	GET    /tokens[?user=name]          list tokens (never the tokens themselves)
//	POST   /tokens                      {"user","name","ttl":"720h"}: issue; the token is in the answer, once (201)
//	DELETE /tokens/{user}/{name}        revoke (204)
//
// Errors are {"error":{"kind","message"}} with the status of the kind, as in the HTTP API.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	h := &userAPI{s: s}
	writeErr := h.writeErr
	mux.HandleFunc("GET /users", h.auth(h.listUsers))
	mux.HandleFunc("POST /users", h.auth(h.createUser))
	mux.HandleFunc("GET /users/{name}", h.auth(h.getUser))
	mux.HandleFunc("PATCH /users/{name}", h.auth(h.updateUser))
	mux.HandleFunc("PUT /users/{name}", h.auth(h.updateUser))
	mux.HandleFunc("DELETE /users/{name}", h.auth(h.deleteUser))
	mux.HandleFunc("POST /users/{name}/password", h.auth(h.changePassword))
	mux.HandleFunc("PUT /users/{name}/password", h.auth(h.changePassword))
	mux.HandleFunc("GET /tokens", h.auth(h.listTokens))
	mux.HandleFunc("POST /tokens", h.auth(h.issueToken))
	mux.HandleFunc("DELETE /tokens/{user}/{name}", h.auth(h.revokeToken))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, r, verity.Errorf(verity.NotFound, "user api", "no endpoint %s %s; see docs/security.md", r.Method, r.URL.Path))
	})
	return mux
}

type userAPI struct{ s *Service }

func (h *userAPI) auth(next func(http.ResponseWriter, *http.Request, Principal) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// Answers carry user data or tokens: keep them out of every cache.
		w.Header().Set("Cache-Control", "no-store")
		p, err := h.s.Authenticate(r.Context(), r.Header.Get("Authorization"))
		if err == nil {
			err = next(w, r, p)
		}
		if err != nil {
			h.writeErr(w, r, err)
		}
	}
}

func (h *userAPI) listUsers(w http.ResponseWriter, r *http.Request, p Principal) error {
	users, err := h.s.ListUsers(r.Context(), p)
	if err != nil {
		return err
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"users": users})
	return nil
}

func (h *userAPI) createUser(w http.ResponseWriter, r *http.Request, p Principal) error {
	if err := requireAdmin("create user", p); err != nil {
		return err // before reading a body a stranger sent
	}
	var req struct {
		Name     string   `json:"name"`
		Password string   `json:"password"`
		Roles    []string `json:"roles"`
	}
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if err := h.s.CreateUser(r.Context(), p, req.Name, req.Password, req.Roles); err != nil {
		return err
	}
	u, err := h.s.GetUser(r.Context(), p, req.Name)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/users/"+req.Name)
	httpjson.Write(w, http.StatusCreated, u)
	return nil
}

func (h *userAPI) getUser(w http.ResponseWriter, r *http.Request, p Principal) error {
	u, err := h.s.GetUser(r.Context(), p, r.PathValue("name"))
	if err != nil {
		return err
	}
	httpjson.Write(w, http.StatusOK, u)
	return nil
}

func (h *userAPI) updateUser(w http.ResponseWriter, r *http.Request, p Principal) error {
	if err := requireAdmin("update user", p); err != nil {
		return err
	}
	var req UserUpdate
	if err := decode(w, r, &req); err != nil {
		return err
	}
	name := r.PathValue("name")
	if err := h.s.UpdateUser(r.Context(), p, name, req); err != nil {
		return err
	}
	u, err := h.s.GetUser(r.Context(), p, name)
	if err != nil {
		return err
	}
	httpjson.Write(w, http.StatusOK, u)
	return nil
}

func (h *userAPI) deleteUser(w http.ResponseWriter, r *http.Request, p Principal) error {
	if err := h.s.DeleteUser(r.Context(), p, r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *userAPI) changePassword(w http.ResponseWriter, r *http.Request, p Principal) error {
	if err := requireAdmin("change password", p); err != nil {
		return err
	}
	var req struct {
		Password string `json:"password"`
	}
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if err := h.s.ChangePassword(r.Context(), p, r.PathValue("name"), req.Password); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *userAPI) listTokens(w http.ResponseWriter, r *http.Request, p Principal) error {
	tokens, err := h.s.ListTokens(r.Context(), p, r.URL.Query().Get("user"))
	if err != nil {
		return err
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"tokens": tokens})
	return nil
}

func (h *userAPI) issueToken(w http.ResponseWriter, r *http.Request, p Principal) error {
	const op = "issue token"
	if err := requireAdmin(op, p); err != nil {
		return err
	}
	var req struct {
		User string `json:"user"`
		Name string `json:"name"`
		// TTL is a Go duration such as "720h" or "15m"; empty means the longest allowed.
		TTL string `json:"ttl"`
	}
	if err := decode(w, r, &req); err != nil {
		return err
	}
	var ttl time.Duration
	if req.TTL != "" {
		var err error
		if ttl, err = time.ParseDuration(req.TTL); err != nil {
			return verity.Errorf(verity.Invalid, op, "ttl %q is not a duration such as \"720h\" or \"15m\"", req.TTL)
		}
	}
	token, info, err := h.s.IssueToken(r.Context(), p, req.User, req.Name, ttl)
	if err != nil {
		return err
	}
	httpjson.Write(w, http.StatusCreated, struct {
		Token string `json:"token"`
		TokenInfo
	}{token, info})
	return nil
}

func (h *userAPI) revokeToken(w http.ResponseWriter, r *http.Request, p Principal) error {
	if err := h.s.RevokeToken(r.Context(), p, r.PathValue("user"), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// decode reads a JSON body into v, refusing unknown fields, trailing data and bodies over
// maxBody, all as Invalid.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	const op = "decode request"
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		return verity.Errorf(verity.Invalid, op, "content type %q: send application/json", ct)
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			return verity.Errorf(verity.Invalid, op, "request body is over the limit of %d bytes", maxBody)
		case errors.Is(err, io.EOF):
			return verity.Errorf(verity.Invalid, op, "request body is empty; send a JSON object")
		}
		return verity.Errorf(verity.Invalid, op, "request body is not the JSON object expected: %v", err)
	}
	if dec.More() {
		return verity.Errorf(verity.Invalid, op, "request body has data after its JSON object")
	}
	return nil
}

// writeErr answers with err as JSON. Internal errors are described only as such: their
// detail goes to the log, not to a caller who can do nothing about it.
func (h *userAPI) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	var e *verity.Error
	kind, msg := verity.Internal, "internal error; the server log has the details"
	switch {
	case errors.As(err, &e) && verity.ParseErrorKind(e.Kind.String()) != verity.Internal:
		kind, msg = e.Kind, e.Error()
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		kind, msg = verity.Unavailable, fmt.Sprintf("the request ended before it was answered: %v", err)
	default:
		h.s.cfg.Logger.ErrorContext(r.Context(), "auth: user api: internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if kind == verity.Unauthenticated {
		w.Header().Set("WWW-Authenticate", `Basic realm="verity"`)
	}
	type body struct {
		Kind    string `json:"kind"`
		Message string `json:"message"`
	}
	httpjson.Write(w, kind.HTTPStatus(), map[string]body{"error": {Kind: kind.String(), Message: msg}})
}
