package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/labstack/echo/v4"
	"github.com/tus/tusd/v2/pkg/filestore"
	tusd "github.com/tus/tusd/v2/pkg/handler"

	"github.com/imagesvc/imagesvc/internal/httpapi"
)

var (
	specOnce   sync.Once
	specDoc    *openapi3.T
	specRouter routers.Router
	specErr    error
)

// spec loads and validates the OpenAPI document the API serves.
func spec(t *testing.T) (*openapi3.T, routers.Router) {
	t.Helper()
	specOnce.Do(func() {
		// The reference page, the web app and their scripts, styles and
		// icon are text the schema calls a string.
		for _, ct := range []string{"text/html", "text/javascript", "text/css", "image/svg+xml"} {
			openapi3filter.RegisterBodyDecoder(ct, textBody)
		}
		loader := openapi3.NewLoader()
		specDoc, specErr = loader.LoadFromData(httpapi.OpenAPI)
		if specErr != nil {
			return
		}
		if specErr = specDoc.Validate(context.Background()); specErr != nil {
			return
		}
		specDoc.Servers = nil // match any host: the tests' servers have random ports
		specRouter, specErr = gorillamux.NewRouter(specDoc)
	})
	if specErr != nil {
		t.Fatalf("openapi.yaml: %v", specErr)
	}
	return specDoc, specRouter
}

// textBody decodes a text body as one string.
func textBody(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
	b, err := io.ReadAll(body)
	return string(b), err
}

// validating checks every API response a test receives against the
// OpenAPI document: a route missing from it, or a body of another shape,
// fails the test.
type validating struct {
	t      *testing.T
	router routers.Router
}

func (v validating) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil || strings.HasPrefix(req.URL.Path, "/monitoring") {
		return resp, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	route, params, ferr := v.router.FindRoute(req)
	if ferr != nil {
		if resp.StatusCode < 400 {
			v.t.Errorf("%s %s answered %d but is not in openapi.yaml", req.Method, req.URL.Path, resp.StatusCode)
		}
		return resp, nil
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true},
		},
		Status: resp.StatusCode, Header: resp.Header, Body: io.NopCloser(bytes.NewReader(body)),
	}
	if err := openapi3filter.ValidateResponse(req.Context(), in); err != nil {
		v.t.Errorf("%s %s answered %d with a body that differs from openapi.yaml: %v\n%s", req.Method, req.URL.Path, resp.StatusCode, err, body)
	} else if err := errorCodeListed(route, resp.StatusCode, body); err != nil {
		v.t.Errorf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	return resp, nil
}

// documentedCode matches an error code in a response's description, where
// the document lists the codes the response can carry, each in backticks.
var documentedCode = regexp.MustCompile("`([a-z][a-z0-9_]*)`")

// errorCodeListed checks that the code of an error answer is one its
// response in the document lists.
func errorCodeListed(route *routers.Route, status int, body []byte) error {
	var e struct {
		Error *struct{ Code string } `json:"error"`
	}
	if status < 400 || json.Unmarshal(body, &e) != nil || e.Error == nil {
		return nil
	}
	ref := route.Operation.Responses.Status(status)
	if ref == nil || ref.Value == nil || ref.Value.Description == nil {
		return fmt.Errorf("%d is not in openapi.yaml", status)
	}
	var listed []string
	for _, m := range documentedCode.FindAllStringSubmatch(*ref.Value.Description, -1) {
		listed = append(listed, m[1])
	}
	if !slices.Contains(listed, e.Error.Code) {
		return fmt.Errorf("answered %d %s, but openapi.yaml lists only %v for %d", status, e.Error.Code, listed, status)
	}
	return nil
}

// TestOpenAPIRoutes: the document lists exactly the routes the API serves.
func TestOpenAPIRoutes(t *testing.T) {
	doc, _ := spec(t)
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	// Any tus store registers the tus routes; tusd's file store needs no
	// server.
	tus := tusd.NewStoreComposer()
	filestore.New(t.TempDir()).UseIn(tus)
	e := httpapi.New(httpapi.Deps{Webhooks: noWebhooks{}, Events: noEvents{}, Uploads: noUploads{}, Tus: tus,
		Accounts: noAccounts{}}, httpapi.Config{}, nil)
	served := map[string]bool{}
	for _, r := range e.Routes() {
		if strings.HasPrefix(r.Path, "/monitoring") || r.Method == echo.RouteNotFound {
			continue
		}
		path := r.Path
		for _, seg := range strings.Split(path, "/") {
			if strings.HasPrefix(seg, ":") {
				path = strings.Replace(path, seg, "{"+seg[1:]+"}", 1)
			}
		}
		served[r.Method+" "+path] = true
	}
	for k := range served {
		if !documented[k] {
			t.Errorf("%s is served but not in openapi.yaml", k)
		}
	}
	for k := range documented {
		if !served[k] {
			t.Errorf("%s is in openapi.yaml but not served", k)
		}
	}
	var keys []string
	for k := range served {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if len(keys) < 20 {
		t.Errorf("only %d routes found; the comparison is not looking at the real router", len(keys))
	}
}

func TestOpenAPIServed(t *testing.T) {
	h := newHarness(t)
	r := h.do(http.MethodGet, "/openapi.yaml", "", "", nil)
	if r.Status != 200 || !bytes.Equal(r.Body, httpapi.OpenAPI) {
		t.Errorf("/openapi.yaml: %d", r.Status)
	}
}

// noWebhooks only makes New register the webhook routes.
type noWebhooks struct{ httpapi.Webhooks }

// noUploads only makes New register the direct upload routes.
type noUploads struct{ httpapi.DirectUploads }

// noEvents only makes New register the event stream.
type noEvents struct{ httpapi.Events }

// noAccounts only makes New register the account routes.
type noAccounts struct{ httpapi.Accounts }
