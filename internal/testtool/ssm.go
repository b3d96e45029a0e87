package testtool

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// SSM is a stand-in for AWS Systems Manager's Parameter Store that
// answers GetParameter with params (name: value) as SecureStrings, and
// ParameterNotFound for any other name. Point the AWS SDK at it with
// AWS_ENDPOINT_URL_SSM=URL (and any static credentials); Reads counts
// the GetParameter calls answered.
type SSM struct {
	URL   string
	Reads atomic.Int64
}

// NewSSM starts the stand-in, closed when the test ends.
func NewSSM(t testing.TB, params map[string]string) *SSM {
	t.Helper()
	s := &SSM{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		if r.Header.Get("X-Amz-Target") != "AmazonSSM.GetParameter" {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"__type": "UnknownOperationException", "message": r.Header.Get("X-Amz-Target")})
			return
		}
		var in struct{ Name string }
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"__type": "ValidationException", "message": err.Error()})
			return
		}
		v, ok := params[in.Name]
		if !ok {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"__type": "ParameterNotFound", "message": in.Name})
			return
		}
		s.Reads.Add(1)
		_ = json.NewEncoder(w).Encode(map[string]any{"Parameter": map[string]any{
			"Name": in.Name, "Type": "SecureString", "Value": v, "Version": 1,
		}})
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// Env is the variable that points the AWS SDK at the stand-in (which
// takes any credentials; the SDK needs some, and a region).
func (s *SSM) Env() string { return "AWS_ENDPOINT_URL_SSM=" + s.URL }
