package httpapi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/labstack/echo/v4"
)

// MaxBodyBytes is the largest request body accepted (docs/api.md#errors).
const MaxBodyBytes = 64 << 10

// readBody reads the whole request body, refusing more than MaxBodyBytes.
func readBody(c echo.Context) ([]byte, error) {
	r := c.Request()
	if r.ContentLength > MaxBodyBytes {
		return nil, errTooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, errTooLarge
		}
		return nil, badRequest("cannot read request body")
	}
	return body, nil
}

// mediaType is the request's Content-Type without parameters ("" if none).
func mediaType(c echo.Context) string {
	ct := c.Request().Header.Get(echo.HeaderContentType)
	if ct == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return "invalid"
	}
	return strings.ToLower(mt)
}

func unsupportedMedia(allowed string) error {
	return &apiError{Status: http.StatusUnsupportedMediaType, Code: codeUnsupportedMedia, Message: "request body must be " + allowed}
}

// bindJSON decodes a JSON body into v strictly (see decodeJSON), after
// checking the JSON content type. An empty body is allowed only when
// optional is true (v then stays as it was).
func bindJSON(c echo.Context, v any, optional bool) error {
	body, err := readBody(c)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if optional {
			return nil
		}
		return badRequest("request body is required")
	}
	if mt := mediaType(c); mt != echo.MIMEApplicationJSON {
		return unsupportedMedia("application/json")
	}
	return decodeJSON(body, v)
}

// decodeOptions make request decoding strict (docs/api.md#strict-json): member
// names match the struct's exactly (no case folding), a name given twice in one
// object is an error, so is a name the struct does not know, and strings must
// be valid UTF-8. All but RejectUnknownMembers are the decoder's defaults; they
// are spelt out because the API's contract rests on them.
var decodeOptions = json.JoinOptions(
	json.RejectUnknownMembers(true),
	json.MatchCaseInsensitiveNames(false),
	jsontext.AllowDuplicateNames(false),
	jsontext.AllowInvalidUTF8(false),
)

// decoders are reused: a fresh jsontext.Decoder costs more than decoding a
// create's body. One goes back to the pool reset onto noInput, holding no
// request's bytes.
var (
	decoders = sync.Pool{New: func() any { return new(jsontext.Decoder) }}
	noInput  = bytes.NewReader(nil)
)

// decodeJSON decodes body, which must be one JSON object and nothing after
// it, into v under decodeOptions. A JSON null stores the zero value (a nil
// pointer, slice or map); a member left out leaves its field as it was.
func decodeJSON(body []byte, v any) error {
	if !utf8.Valid(body) {
		return badRequest("request body is not valid UTF-8")
	}
	if trimmed := bytes.TrimSpace(body); len(trimmed) == 0 || trimmed[0] != '{' {
		return badRequest("the body must be a JSON object")
	}
	dec := decoders.Get().(*jsontext.Decoder)
	defer func() {
		dec.Reset(noInput)
		decoders.Put(dec)
	}()
	dec.Reset(bytes.NewBuffer(body), decodeOptions) // parsed in place, not copied
	if err := json.UnmarshalDecode(dec, v); err != nil {
		return badRequest("malformed JSON: %s", describeJSONError(err))
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return badRequest("malformed JSON: unexpected data after the object")
	}
	return nil
}

// describeJSONError says what is wrong with a body in a client's terms,
// naming the field (as a dotted path, "device.label") where there is one.
func describeJSONError(err error) string {
	var syntaxErr *jsontext.SyntacticError
	var semErr *json.SemanticError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "unexpected end of input"
	case errors.As(err, &syntaxErr):
		if errors.Is(syntaxErr.Err, jsontext.ErrDuplicateName) {
			return fmt.Sprintf("duplicate field %q", fieldPath(syntaxErr.JSONPointer))
		}
		msg := fmt.Sprintf("syntax error at byte %d", syntaxErr.ByteOffset)
		if syntaxErr.Err != nil {
			msg += ": " + strings.TrimPrefix(syntaxErr.Err.Error(), "jsontext: ")
		}
		return msg
	case errors.As(err, &semErr):
		field := fieldPath(semErr.JSONPointer)
		switch {
		case errors.Is(semErr.Err, json.ErrUnknownName):
			return fmt.Sprintf("unknown field %q", field)
		case field != "" && semErr.GoType != nil:
			return fmt.Sprintf("field %q must be %s", field, describeType(semErr.GoType))
		}
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// fieldPath is a JSON pointer ("/device/label") as the API's messages name
// fields ("device.label"), cut to 128 bytes (the name may be the client's
// invention); "" for the whole body.
func fieldPath(p jsontext.Pointer) string {
	var b strings.Builder
	for tok := range p.Tokens() {
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(tok)
	}
	return truncateUTF8(b.String(), maxIDLength)
}

// describeType names the JSON a Go type is decoded from.
func describeType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == reflect.TypeFor[time.Time]() {
		return "an RFC 3339 time"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.String {
			return "an array of strings"
		}
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return t.String()
}

// tokenRequest is the body of RFC 7662 introspection and RFC 7009
// revocation: a form or a JSON object.
type tokenRequest struct {
	Token         string `json:"token"`
	TokenTypeHint string `json:"token_type_hint"`
}

// bindTokenRequest reads a tokenRequest from a form or JSON body.
func bindTokenRequest(c echo.Context) (tokenRequest, error) {
	var req tokenRequest
	switch mediaType(c) {
	case echo.MIMEApplicationForm:
		body, err := readBody(c)
		if err != nil {
			return req, err
		}
		if !utf8.Valid(body) {
			return req, badRequest("request body is not valid UTF-8")
		}
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return req, badRequest("malformed form body")
		}
		for key := range form {
			if key != "token" && key != "token_type_hint" {
				return req, badRequest("unknown field %q", key)
			}
		}
		req.Token, req.TokenTypeHint = form.Get("token"), form.Get("token_type_hint")
	case echo.MIMEApplicationJSON:
		if err := bindJSON(c, &req, false); err != nil {
			return req, err
		}
	default:
		return req, unsupportedMedia("application/x-www-form-urlencoded or application/json")
	}
	if req.Token == "" {
		return req, badRequest("token is required")
	}
	if len(req.Token) > 4096 {
		return req, badRequest("token is too long")
	}
	return req, nil
}
