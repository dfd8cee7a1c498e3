package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
)

// MaxBodyBytes is the largest request body accepted (SPEC §4).
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

// bindJSON decodes a JSON body into v strictly: JSON content type, valid
// UTF-8, no unknown fields, one value and nothing after it. An empty body is
// allowed only when optional is true (v then stays as it was).
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

func decodeJSON(body []byte, v any) error {
	if !utf8.Valid(body) {
		return badRequest("request body is not valid UTF-8")
	}
	if trimmed := bytes.TrimSpace(body); len(trimmed) == 0 || trimmed[0] != '{' {
		return badRequest("the body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("malformed JSON: %s", describeJSONError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("malformed JSON: unexpected data after the object")
	}
	return nil
}

func describeJSONError(err error) string {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		if typeErr.Field != "" {
			return fmt.Sprintf("field %q must be %s", typeErr.Field, typeErr.Type.String())
		}
		return "the body must be a JSON object"
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("syntax error at byte %d", syntaxErr.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "unexpected end of input"
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	return msg
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
