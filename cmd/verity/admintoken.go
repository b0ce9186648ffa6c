package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/verity-dev/verity/internal/httpjson"
)

// envAdminToken holds the token of the gateway's and the consolidator's admin APIs, when
// --admin-token is not given (prefer it: a flag shows in the process list).
const envAdminToken = "VERITY_ADMIN_TOKEN"

const adminTokenUsage = "bearer `TOKEN` the admin API requires (prefer " + envAdminToken + ");\nrequired when the admin API listens beyond loopback"

// adminToken is the --admin-token flag's value, or else VERITY_ADMIN_TOKEN's, without
// surrounding white space: a token read from a file keeps its newline, which no header can
// carry.
func adminToken(flag string) string {
	if flag != "" {
		return strings.TrimSpace(flag)
	}
	return strings.TrimSpace(os.Getenv(envAdminToken))
}

// guardAdmin puts h, an admin API that changes what a running part does (reloads routes,
// rebuilds read models) behind token: every request must carry "Authorization: Bearer
// TOKEN", /metrics too. Without a token it serves h as it is, but only on a loopback
// address: on any other, whoever reaches the port could reroute the gateway's traffic.
func guardAdmin(cmd, flag, addr, token string, h http.Handler) (http.Handler, error) {
	if token == "" {
		if !isLoopbackListen(addr) {
			return nil, usagef(cmd, "%s %s is reachable from other machines: give the admin API a token (%s, or --admin-token), or listen on a loopback address such as 127.0.0.1:PORT", flag, addr, envAdminToken)
		}
		return h, nil
	}
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The scheme is case-insensitive (RFC 9110 11.1); the token is compared in full.
		scheme, credentials, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		got := sha256.Sum256([]byte(strings.TrimSpace(credentials)))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 || !strings.EqualFold(scheme, "Bearer") {
			w.Header().Set("WWW-Authenticate", `Bearer realm="verity admin"`)
			httpjson.Write(w, http.StatusUnauthorized, map[string]any{"error": map[string]string{
				"kind":    "unauthenticated",
				"message": fmt.Sprintf("the %s admin API needs its token: Authorization: Bearer TOKEN (%s of the process that serves it)", cmd, envAdminToken),
			}})
			return
		}
		h.ServeHTTP(w, r)
	}), nil
}

// isLoopbackListen reports whether a listen address (host:port) binds only loopback:
// 127.0.0.0/8, ::1 or localhost. An empty host (all interfaces) is not.
func isLoopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
