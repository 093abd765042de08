package normalize

import (
	"strings"
	"unicode/utf8"
)

// The fast path. Nearly every notification is a flat structured CloudEvent
// whose values are plain strings and whose data is an object of plain
// strings. encoding/json decodes it through reflection, allocating every
// string and every pointer field on its own, which was about half the
// handler's allocations. fastEvent decodes exactly that common form with
// one allocation for all strings and one for all pointers, and gives up
// (returns false) on anything else: escapes, numbers, null, nested values
// other than data, duplicate or case-folded keys, invalid UTF-8, trailing
// bytes. The caller then decodes with encoding/json, which also produces
// every error message, so both paths accept the same bodies and decode them
// alike (FuzzFastPath checks it). Parse refuses a body that is not UTF-8
// before either path sees it; the fast path still checks, so that it
// decodes any input exactly as encoding/json does. Unknown keys are what
// the slow path caps as extensions (checkExtensions): giving up on them
// here is what lets the fast path skip that check.

// fastFields are the wireEvent members the fast path fills, by key.
var fastFields = [...]string{"specversion", "id", "source", "type", "subject", "time",
	"datacontenttype", "dataschema", "traceparent", "tracestate"}

// fastStatusFields are the wireStatus members, by key.
var fastStatusFields = [...]string{"sessionId", "qosStatus", "statusInfo"}

// fastEvent decodes body into w if body has the common form; w is left
// unchanged when it returns false.
func fastEvent(body []byte, w *wireEvent) bool {
	var p fastParser
	p.s = string(body) // the body buffer is reused: keep one copy
	var top [len(fastFields)]string
	var set [len(fastFields)]bool
	var data [len(fastStatusFields)]string
	var dataSet [len(fastStatusFields)]bool
	hasData := false
	ok := p.object(func(key string) bool {
		if key == "data" {
			if hasData {
				return false
			}
			hasData = true
			return p.statusObject(&data, &dataSet)
		}
		i := fieldIndex(fastFields[:], key)
		if i < 0 || set[i] {
			return false
		}
		v, ok := p.str()
		top[i], set[i] = v, ok
		return ok
	})
	if !ok || !p.end() {
		return false
	}
	// One allocation holds every value the pointers point at.
	vals := new(struct {
		top    [len(fastFields)]string
		data   [len(fastStatusFields)]string
		status wireStatus
	})
	vals.top, vals.data = top, data
	ptr := func(i int) *string {
		if !set[i] {
			return nil
		}
		return &vals.top[i]
	}
	*w = wireEvent{
		SpecVersion: ptr(0), ID: ptr(1), Source: ptr(2), Type: ptr(3), Subject: ptr(4), Time: ptr(5),
		DataContentType: ptr(6), DataSchema: ptr(7), TraceParent: ptr(8), TraceState: ptr(9),
	}
	if hasData {
		for i := range fastStatusFields {
			if dataSet[i] {
				switch i {
				case 0:
					vals.status.SessionID = &vals.data[i]
				case 1:
					vals.status.QoSStatus = &vals.data[i]
				case 2:
					vals.status.StatusInfo = &vals.data[i]
				}
			}
		}
		w.Data = &vals.status
	}
	return true
}

// fieldIndex is the index of key in names, or -1. The fast path gives up
// on -1: the key is unknown (its value is not skipped here) or only
// case-folds to a name, which encoding/json would match.
func fieldIndex(names []string, key string) int {
	for i, n := range names {
		if n == key {
			return i
		}
	}
	return -1
}

// fastParser reads the common form of JSON from s, positioned at i.
type fastParser struct {
	s string
	i int
}

func (p *fastParser) ws() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// end reports whether only whitespace is left.
func (p *fastParser) end() bool {
	p.ws()
	return p.i == len(p.s)
}

// object reads {"key": value, ...}, calling member for each key with the
// parser positioned at the value; member consumes the value.
func (p *fastParser) object(member func(key string) bool) bool {
	p.ws()
	if p.i >= len(p.s) || p.s[p.i] != '{' {
		return false
	}
	p.i++
	p.ws()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return true
	}
	for {
		p.ws()
		key, ok := p.str()
		if !ok {
			return false
		}
		p.ws()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return false
		}
		p.i++
		p.ws()
		if !member(key) {
			return false
		}
		p.ws()
		if p.i >= len(p.s) {
			return false
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return true
		default:
			return false
		}
	}
}

// statusObject reads the data object: known keys with string values.
func (p *fastParser) statusObject(vals *[len(fastStatusFields)]string, set *[len(fastStatusFields)]bool) bool {
	return p.object(func(key string) bool {
		i := fieldIndex(fastStatusFields[:], key)
		if i < 0 || set[i] {
			return false
		}
		v, ok := p.str()
		vals[i], set[i] = v, ok
		return ok
	})
}

// str reads a string with no escapes, no control characters and valid
// UTF-8, returning it as a substring of s (no copy).
func (p *fastParser) str() (string, bool) {
	if p.i >= len(p.s) || p.s[p.i] != '"' {
		return "", false
	}
	start := p.i + 1
	ascii := true
	for j := start; j < len(p.s); j++ {
		switch c := p.s[j]; {
		case c == '"':
			v := p.s[start:j]
			if !ascii && !utf8.ValidString(v) {
				return "", false
			}
			p.i = j + 1
			return v, true
		case c == '\\' || c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return "", false
}

// plainURI reports whether s is an http(s) URL that url.Parse certainly
// accepts: a host of letters, digits, dots and dashes with an optional
// numeric port, then only characters that need no escaping. Anything else
// is left to url.Parse (FuzzFastPath checks the claim).
func plainURI(s string) bool {
	rest, ok := strings.CutPrefix(s, "https://")
	if !ok {
		if rest, ok = strings.CutPrefix(s, "http://"); !ok {
			return false
		}
	}
	host, path, _ := strings.Cut(rest, "/")
	name, port, hasPort := strings.Cut(host, ":")
	if name == "" || (hasPort && port == "") {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !(isAlnum(c) || c == '.' || c == '-') {
			return false
		}
	}
	for i := 0; i < len(port); i++ {
		if c := port[i]; c < '0' || c > '9' {
			return false
		}
	}
	for i := 0; i < len(path); i++ {
		if c := path[i]; !(isAlnum(c) || strings.IndexByte("-._~!$&'()*+,;=:@/?", c) >= 0) {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
