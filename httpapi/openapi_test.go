package httpapi_test

// docs/openapi.yaml is checked against the routes the server really
// registers: a route added without documentation, or documentation left
// behind by a removed route, fails here with the list of differences.

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"gopkg.in/yaml.v3"

	"github.com/sessiond/sessiond/httpapi"
	"github.com/sessiond/sessiond/httpapi/cookies"
	"github.com/sessiond/sessiond/node"
)

const openAPIPath = "../docs/openapi.yaml"

// anyMethods are the methods echo's Any registers (echo's unexported
// `methods` list). A path registered with all of them is an Any route.
var anyMethods = []string{
	http.MethodConnect, http.MethodDelete, http.MethodGet, http.MethodHead,
	http.MethodOptions, http.MethodPatch, http.MethodPost, echo.PROPFIND,
	http.MethodPut, http.MethodTrace, echo.REPORT,
}

// openAPIMethods are the operations a path item may hold, as OpenAPI spells
// them.
var openAPIMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

func TestOpenAPI_DocumentsEveryRoute(t *testing.T) {
	registered := registeredRoutes(t)
	doc := loadOpenAPI(t)
	documented := documentedOperations(t, doc)

	var missing, stale []string
	for _, path := range sortedKeys(registered) {
		methods := registered[path]
		docMethods, ok := documented[path]
		if isAnyRoute(methods) {
			// An Any route (e.Any) answers every method echo knows,
			// CONNECT, TRACE, PROPFIND and REPORT included; documenting all
			// of them would describe nothing useful. The document lists the
			// methods that make sense for it (forward auth: the methods a
			// proxy passes on) and must include at least GET; anything it
			// lists is registered, since every method is.
			if !ok || !docMethods[http.MethodGet] {
				missing = append(missing, fmt.Sprintf("GET %s (an Any route: document at least GET)", path))
			}
			continue
		}
		for _, m := range sortedKeys(methods) {
			if !docMethods[m] {
				missing = append(missing, m+" "+path)
			}
		}
		for _, m := range sortedKeys(docMethods) {
			if !methods[m] {
				stale = append(stale, m+" "+path)
			}
		}
	}
	for _, path := range sortedKeys(documented) {
		if _, ok := registered[path]; ok {
			continue
		}
		for _, m := range sortedKeys(documented[path]) {
			stale = append(stale, m+" "+path)
		}
	}
	if len(missing) > 0 {
		t.Errorf("routes registered by the server but not documented in docs/openapi.yaml:\n\t%s", strings.Join(missing, "\n\t"))
	}
	if len(stale) > 0 {
		t.Errorf("operations documented in docs/openapi.yaml but not registered by the server:\n\t%s", strings.Join(stale, "\n\t"))
	}
}

func TestOpenAPI_DocumentIsValid(t *testing.T) {
	doc := loadOpenAPI(t)

	version, _ := doc["openapi"].(string)
	if !regexp.MustCompile(`^3\.1\.\d+$`).MatchString(version) {
		t.Errorf("openapi is %q, want 3.1.x", version)
	}
	info, _ := doc["info"].(map[string]any)
	if info["title"] == nil || info["version"] == nil {
		t.Errorf("info needs title and version")
	}

	// Every $ref resolves within the document.
	walk(doc, "", func(at string, m map[string]any) {
		ref, ok := m["$ref"]
		if !ok {
			return
		}
		s, ok := ref.(string)
		if !ok {
			t.Errorf("%s: $ref is not a string", at)
			return
		}
		if _, err := resolvePointer(doc, s); err != nil {
			t.Errorf("%s: $ref %q: %v", at, s, err)
		}
	})

	schemes, _ := deref(doc, mapAt(doc, "components", "securitySchemes")).(map[string]any)
	paths, _ := doc["paths"].(map[string]any)
	if len(paths) == 0 {
		t.Fatalf("no paths")
	}
	templateParam := regexp.MustCompile(`\{([^}]+)\}`)
	operationIDs := map[string]string{}
	for _, path := range sortedKeys(paths) {
		item, ok := paths[path].(map[string]any)
		if !ok {
			t.Errorf("%s: not a path item", path)
			continue
		}
		var inTemplate []string
		for _, m := range templateParam.FindAllStringSubmatch(path, -1) {
			inTemplate = append(inTemplate, m[1])
		}
		ops := 0
		for _, method := range openAPIMethods {
			raw, ok := item[method]
			if !ok {
				continue
			}
			ops++
			where := strings.ToUpper(method) + " " + path
			op, ok := raw.(map[string]any)
			if !ok {
				t.Errorf("%s: not an operation object", where)
				continue
			}
			if id, _ := op["operationId"].(string); id != "" {
				if prev, dup := operationIDs[id]; dup {
					t.Errorf("%s: operationId %q already used by %s", where, id, prev)
				}
				operationIDs[id] = where
			}
			responses, _ := op["responses"].(map[string]any)
			if len(responses) == 0 {
				t.Errorf("%s: no responses", where)
			}
			for code := range responses {
				if n, err := strconv.Atoi(code); code != "default" && (err != nil || n < 100 || n > 599) {
					t.Errorf("%s: response key %q is not a status code", where, code)
				}
			}
			// Path parameters: exactly those of the template, each required.
			declared := map[string]bool{}
			for _, list := range []any{item["parameters"], op["parameters"]} {
				params, _ := list.([]any)
				for _, p := range params {
					pm, _ := deref(doc, p).(map[string]any)
					if pm["in"] != "path" {
						continue
					}
					name, _ := pm["name"].(string)
					declared[name] = true
					if pm["required"] != true {
						t.Errorf("%s: path parameter %q must be required", where, name)
					}
				}
			}
			for _, name := range inTemplate {
				if !declared[name] {
					t.Errorf("%s: path parameter {%s} is not declared", where, name)
				}
			}
			for name := range declared {
				if !slices.Contains(inTemplate, name) {
					t.Errorf("%s: declares path parameter %q that the path does not have", where, name)
				}
			}
			// Security requirements name defined schemes.
			reqs, _ := op["security"].([]any)
			for _, r := range reqs {
				rm, _ := r.(map[string]any)
				for name := range rm {
					if _, ok := schemes[name]; !ok {
						t.Errorf("%s: security scheme %q is not defined", where, name)
					}
				}
			}
		}
		if ops == 0 {
			t.Errorf("%s: no operations", path)
		}
	}
}

// registeredRoutes builds the real server over a real node and returns the
// routes its router holds, by OpenAPI path, with their methods. Every
// optional feature is configured, so that no route is left out because a
// feature is off.
func registeredRoutes(t *testing.T) map[string]map[string]bool {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := node.Default()
	cfg.NodeID = "openapi"
	cfg.DataDir = t.TempDir()
	cfg.RaftAddr = "127.0.0.1:0"
	cfg.Logger = logger
	n := newNode(t, cfg)
	keys, err := cookies.NewKeys([]byte(strings.Repeat("k", cookies.MinKeyLen)))
	if err != nil {
		t.Fatal(err)
	}
	apiCfg := httpapi.Default()
	apiCfg.Backend = n
	apiCfg.APIKeys = []string{testAPIKey}
	apiCfg.Logger = logger
	apiCfg.CookieKeys = keys
	apiCfg.AccountLoginURL = "https://app.example.com/login"
	api, err := httpapi.New(apiCfg)
	if err != nil {
		t.Fatalf("new API: %v", err)
	}
	e, ok := api.Handler().(*echo.Echo)
	if !ok {
		t.Fatalf("Handler() is %T, not *echo.Echo", api.Handler())
	}
	known := map[string]bool{}
	for _, m := range anyMethods {
		known[m] = true
	}
	out := map[string]map[string]bool{}
	for _, r := range e.Routes() {
		if !known[r.Method] {
			continue // echo's internal entries (echo_route_not_found, …)
		}
		path := openAPIPathOf(r.Path)
		if out[path] == nil {
			out[path] = map[string]bool{}
		}
		out[path][r.Method] = true
	}
	if len(out) == 0 {
		t.Fatal("the router holds no routes")
	}
	return out
}

// openAPIPathOf turns an echo route path into its OpenAPI form: ":id"
// becomes "{id}" and the catch-all "*" becomes "{path}" (documented as
// "a path that may contain /").
func openAPIPathOf(echoPath string) string {
	segs := strings.Split(echoPath, "/")
	for i, s := range segs {
		switch {
		case strings.HasPrefix(s, ":"):
			segs[i] = "{" + s[1:] + "}"
		case strings.Contains(s, "*"):
			segs[i] = strings.Replace(s, "*", "{path}", 1)
		}
	}
	return strings.Join(segs, "/")
}

func isAnyRoute(methods map[string]bool) bool {
	for _, m := range anyMethods {
		if !methods[m] {
			return false
		}
	}
	return true
}

// documentedOperations lists the document's operations by path, with
// upper-case methods.
func documentedOperations(t *testing.T, doc map[string]any) map[string]map[string]bool {
	t.Helper()
	paths, ok := doc["paths"].(map[string]any)
	if !ok {
		t.Fatalf("%s: no paths object", openAPIPath)
	}
	out := map[string]map[string]bool{}
	for path, raw := range paths {
		item, _ := raw.(map[string]any)
		out[path] = map[string]bool{}
		for _, m := range openAPIMethods {
			if _, ok := item[m]; ok {
				out[path][strings.ToUpper(m)] = true
			}
		}
	}
	return out
}

func loadOpenAPI(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile(openAPIPath)
	if err != nil {
		t.Fatalf("read the OpenAPI document: %v", err)
	}
	var raw any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		t.Fatalf("%s does not parse: %v", openAPIPath, err)
	}
	doc, err := jsonShaped(raw, "")
	if err != nil {
		t.Fatalf("%s: %v", openAPIPath, err)
	}
	m, ok := doc.(map[string]any)
	if !ok {
		t.Fatalf("%s: the document is not an object", openAPIPath)
	}
	return m
}

// jsonShaped checks that every mapping key is a string (OpenAPI documents
// must round-trip through JSON: an unquoted 200 is an integer key in YAML)
// and returns the value with map[string]any mappings.
func jsonShaped(v any, at string) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			c, err := jsonShaped(e, at+"/"+k)
			if err != nil {
				return nil, err
			}
			x[k] = c
		}
		return x, nil
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("%s: key %v is a %T, not a string (quote it)", at, k, k)
			}
			c, err := jsonShaped(e, at+"/"+ks)
			if err != nil {
				return nil, err
			}
			out[ks] = c
		}
		return out, nil
	case []any:
		for i, e := range x {
			c, err := jsonShaped(e, at+"/"+strconv.Itoa(i))
			if err != nil {
				return nil, err
			}
			x[i] = c
		}
		return x, nil
	}
	return v, nil
}

// walk calls f on every object in v, with its JSON pointer.
func walk(v any, at string, f func(at string, m map[string]any)) {
	switch x := v.(type) {
	case map[string]any:
		f(at, x)
		for _, k := range sortedKeys(x) {
			walk(x[k], at+"/"+escapePointer(k), f)
		}
	case []any:
		for i, e := range x {
			walk(e, at+"/"+strconv.Itoa(i), f)
		}
	}
}

// resolvePointer resolves a local reference ("#/components/schemas/X").
func resolvePointer(doc map[string]any, ref string) (any, error) {
	rest, ok := strings.CutPrefix(ref, "#")
	if !ok {
		return nil, fmt.Errorf("only references within the document are used here")
	}
	var cur any = doc
	if rest == "" {
		return cur, nil
	}
	if !strings.HasPrefix(rest, "/") {
		return nil, fmt.Errorf("not a JSON pointer")
	}
	for _, tok := range strings.Split(rest[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch x := cur.(type) {
		case map[string]any:
			next, ok := x[tok]
			if !ok {
				return nil, fmt.Errorf("no %q", tok)
			}
			cur = next
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(x) {
				return nil, fmt.Errorf("no element %q", tok)
			}
			cur = x[i]
		default:
			return nil, fmt.Errorf("cannot descend into %q", tok)
		}
	}
	return cur, nil
}

// deref follows a $ref (one level, enough for this document's components).
func deref(doc map[string]any, v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	ref, ok := m["$ref"].(string)
	if !ok {
		return v
	}
	target, err := resolvePointer(doc, ref)
	if err != nil {
		return nil
	}
	return deref(doc, target)
}

func mapAt(doc map[string]any, keys ...string) any {
	var cur any = doc
	for _, k := range keys {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}

func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
