package testkit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// Raw is a request body that Send sends as is, with the Content-Type the
// headers give (none when they give none).
type Raw []byte

// Answer is an HTTP response read whole.
type Answer struct {
	Status int
	Header http.Header
	Body   []byte
}

func (a Answer) String() string {
	return fmt.Sprintf("%d %s", a.Status, bytes.TrimSpace(a.Body))
}

// Send sends a request with client and reads the answer whole. body is nil
// (no body), a Raw, an io.Reader (sent chunked, its length unknown) or a
// value sent as JSON, with Content-Type application/json. header holds
// name, value pairs, set last.
func Send(client *http.Client, method, url string, body any, header ...string) (Answer, error) {
	var rd io.Reader
	contentType := ""
	switch b := body.(type) {
	case nil:
	case Raw:
		rd = bytes.NewReader(b)
	case io.Reader:
		rd = struct{ io.Reader }{b} // hides the length
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return Answer{}, err
		}
		rd = bytes.NewReader(data)
		contentType = "application/json"
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return Answer{}, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return Answer{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return Answer{}, fmt.Errorf("read body: %w", err)
	}
	return Answer{Status: resp.StatusCode, Header: resp.Header, Body: data}, nil
}
