package metricsetup

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRegistryServesRuntimeMetrics(t *testing.T) {
	reg := Registry()
	rec := httptest.NewRecorder()
	Handler(reg).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Result().Body)
	require.Equal(t, 200, rec.Code)
	require.True(t, strings.Contains(string(body), "go_goroutines"), "no Go runtime metrics")
}
