// Package emf writes CloudWatch Embedded Metric Format documents: JSON
// log events from which CloudWatch Logs extracts metrics, so that a Lambda
// function publishes metrics by printing one line to stdout (no API call,
// no agent).
//
// A document follows the specification
// (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html):
//
//	{"_aws":{"Timestamp":1764072000250,"CloudWatchMetrics":[{"Namespace":"Smoothcast",
//	  "Dimensions":[["Channel"],[]],"Metrics":[{"Name":"EventsProcessed","Unit":"Count"}]}]},
//	 "Channel":"demo","EventsProcessed":1}
//
// The metadata (_aws) comes first, then the dimension values, the metric
// values and any other properties, each group in a fixed order, so that
// equal documents are equal bytes. Parse reads a document back and checks
// it against the specification's rules.
package emf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Unit is a CloudWatch metric unit.
type Unit string

// The units of the specification's schema.
const (
	None            Unit = "None"
	Count           Unit = "Count"
	CountPerSecond  Unit = "Count/Second"
	Percent         Unit = "Percent"
	Seconds         Unit = "Seconds"
	Milliseconds    Unit = "Milliseconds"
	Microseconds    Unit = "Microseconds"
	Bytes           Unit = "Bytes"
	Kilobytes       Unit = "Kilobytes"
	Megabytes       Unit = "Megabytes"
	Gigabytes       Unit = "Gigabytes"
	Terabytes       Unit = "Terabytes"
	Bits            Unit = "Bits"
	Kilobits        Unit = "Kilobits"
	Megabits        Unit = "Megabits"
	Gigabits        Unit = "Gigabits"
	Terabits        Unit = "Terabits"
	BytesPerSecond  Unit = "Bytes/Second"
	KilobytesPerSec Unit = "Kilobytes/Second"
	MegabytesPerSec Unit = "Megabytes/Second"
	GigabytesPerSec Unit = "Gigabytes/Second"
	TerabytesPerSec Unit = "Terabytes/Second"
	BitsPerSecond   Unit = "Bits/Second"
	KilobitsPerSec  Unit = "Kilobits/Second"
	MegabitsPerSec  Unit = "Megabits/Second"
	GigabitsPerSec  Unit = "Gigabits/Second"
	TerabitsPerSec  Unit = "Terabits/Second"
)

var units = []Unit{None, Count, CountPerSecond, Percent, Seconds, Milliseconds, Microseconds,
	Bytes, Kilobytes, Megabytes, Gigabytes, Terabytes, Bits, Kilobits, Megabits, Gigabits, Terabits,
	BytesPerSecond, KilobytesPerSec, MegabytesPerSec, GigabytesPerSec, TerabytesPerSec,
	BitsPerSecond, KilobitsPerSec, MegabitsPerSec, GigabitsPerSec, TerabitsPerSec}

// Limits of the specification.
const (
	MaxMetrics       = 100     // metric definitions per directive
	MaxValues        = 100     // values of one metric in one document
	MaxDimensionKeys = 30      // keys per dimension set
	MaxSize          = 1 << 20 // bytes of a document (a CloudWatch Logs event)
)

// Metric is one metric of a document.
type Metric struct {
	Name string
	// Unit is the metric's unit; empty is None.
	Unit Unit
	// HighResolution stores the metric at one-second resolution
	// (StorageResolution 1; alarms may then use 10, 20 or 30 s periods)
	// instead of one minute.
	HighResolution bool
	// Values are the samples: one is written as a number, more as an
	// array (at most MaxValues), from which CloudWatch computes
	// statistics and percentiles as if each were published alone.
	Values []float64
}

// Document is one log event: metrics of one namespace, the dimension sets
// each of them is published under, and the values of those dimensions.
type Document struct {
	// Timestamp is the metrics' time (written in milliseconds).
	Timestamp time.Time
	Namespace string
	// Dimensions are the dimension sets: every metric is published once
	// per set, with the dimensions the set names. An empty set publishes
	// the metric without dimensions (the total over every other set).
	Dimensions [][]string
	// DimensionValues holds the value of every key a set names.
	DimensionValues map[string]string
	Metrics         []Metric
	// Properties are other members of the event (searchable in the logs,
	// not metrics).
	Properties map[string]any
}

// Validate reports whatever would make CloudWatch reject the document or
// drop a metric of it.
func (d *Document) Validate() error {
	if err := checkNamespace(d.Namespace); err != nil {
		return err
	}
	if len(d.Dimensions) == 0 {
		return errors.New("emf: no dimension set (an empty set publishes without dimensions)")
	}
	taken := map[string]string{"_aws": "the metadata"}
	for _, set := range d.Dimensions {
		if len(set) > MaxDimensionKeys {
			return fmt.Errorf("emf: dimension set %q has more than %d keys", set, MaxDimensionKeys)
		}
		for _, k := range set {
			if err := checkDimensionKey(k); err != nil {
				return err
			}
			v, ok := d.DimensionValues[k]
			if !ok {
				return fmt.Errorf("emf: dimension %q has no value", k)
			}
			if err := checkDimensionValue(k, v); err != nil {
				return err
			}
			taken[k] = "a dimension"
		}
	}
	for k := range d.DimensionValues {
		if taken[k] == "" {
			return fmt.Errorf("emf: dimension value %q is in no dimension set", k)
		}
	}
	if len(d.Metrics) == 0 || len(d.Metrics) > MaxMetrics {
		return fmt.Errorf("emf: %d metrics, want 1 to %d", len(d.Metrics), MaxMetrics)
	}
	for _, m := range d.Metrics {
		if err := checkString("metric name", m.Name, 1, 1024); err != nil {
			return err
		}
		if what := taken[m.Name]; what != "" {
			return fmt.Errorf("emf: metric %q has the name of %s", m.Name, what)
		}
		taken[m.Name] = "a metric"
		if m.Unit != "" && !slices.Contains(units, m.Unit) {
			return fmt.Errorf("emf: metric %q: unit %q is not a CloudWatch unit", m.Name, m.Unit)
		}
		if len(m.Values) == 0 || len(m.Values) > MaxValues {
			return fmt.Errorf("emf: metric %q has %d values, want 1 to %d", m.Name, len(m.Values), MaxValues)
		}
		for _, v := range m.Values {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("emf: metric %q: value %v is not a JSON number", m.Name, v)
			}
		}
	}
	for k := range d.Properties {
		if what := taken[k]; what != "" {
			return fmt.Errorf("emf: property %q has the name of %s", k, what)
		}
	}
	return nil
}

func checkString(what, s string, minLen, maxLen int) error {
	n := utf8.RuneCountInString(s)
	switch {
	case !utf8.ValidString(s):
		return fmt.Errorf("emf: %s %q is not UTF-8", what, s)
	case n < minLen || n > maxLen:
		return fmt.Errorf("emf: %s %q: want %d to %d characters", what, s, minLen, maxLen)
	case strings.ContainsAny(s, "\r\n"):
		return fmt.Errorf("emf: %s %q spans lines", what, s) // the schema's ^(.*)$
	}
	return nil
}

func checkNamespace(ns string) error {
	if err := checkString("namespace", ns, 1, 1024); err != nil {
		return err
	}
	if strings.HasPrefix(ns, "AWS/") {
		return fmt.Errorf("emf: namespace %q: AWS/ is reserved for AWS services", ns)
	}
	return nil
}

// checkDimensionKey applies the schema's bounds and CloudWatch's rules for
// dimension names (ASCII, not all white space, not starting with a colon).
func checkDimensionKey(k string) error {
	if err := checkString("dimension key", k, 1, 250); err != nil {
		return err
	}
	if !isASCII(k) || strings.TrimSpace(k) == "" || strings.HasPrefix(k, ":") {
		return fmt.Errorf("emf: dimension key %q: want printable ASCII, not blank, not starting with ':'", k)
	}
	return nil
}

// checkDimensionValue applies the specification's bound and CloudWatch's
// rules for dimension values (ASCII, not all white space).
func checkDimensionValue(k, v string) error {
	if err := checkString("value of dimension "+k, v, 1, 1024); err != nil {
		return err
	}
	if !isASCII(v) || strings.TrimSpace(v) == "" {
		return fmt.Errorf("emf: value %q of dimension %s: want printable ASCII, not blank", v, k)
	}
	return nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// MarshalJSON encodes the document as one JSON object (no newline); an
// invalid document is an error.
func (d Document) MarshalJSON() ([]byte, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	type definition struct {
		Name              string
		Unit              Unit `json:",omitempty"`
		StorageResolution int  `json:",omitempty"`
	}
	type directive struct {
		Namespace  string
		Dimensions [][]string
		Metrics    []definition
	}
	meta := struct {
		Timestamp         int64
		CloudWatchMetrics []directive
	}{Timestamp: d.Timestamp.UnixMilli()}
	dir := directive{Namespace: d.Namespace, Dimensions: make([][]string, len(d.Dimensions))}
	for i, set := range d.Dimensions {
		dir.Dimensions[i] = append([]string{}, set...) // [] rather than null
	}
	for _, m := range d.Metrics {
		def := definition{Name: m.Name, Unit: m.Unit}
		if m.HighResolution {
			def.StorageResolution = 1
		}
		dir.Metrics = append(dir.Metrics, def)
	}
	meta.CloudWatchMetrics = []directive{dir}

	var b bytes.Buffer
	member := func(name string, v any) error {
		if b.Len() == 0 {
			b.WriteByte('{')
		} else {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(name)
		val, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("emf: member %q: %w", name, err)
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(val)
		return nil
	}
	if err := member("_aws", meta); err != nil {
		return nil, err
	}
	for _, k := range sortedKeys(d.DimensionValues) {
		_ = member(k, d.DimensionValues[k])
	}
	for _, m := range d.Metrics {
		var v any = m.Values
		if len(m.Values) == 1 {
			v = m.Values[0]
		}
		_ = member(m.Name, v)
	}
	for _, k := range sortedKeys(d.Properties) {
		if err := member(k, d.Properties[k]); err != nil {
			return nil, err
		}
	}
	b.WriteByte('}')
	if b.Len() > MaxSize {
		return nil, fmt.Errorf("emf: document of %d bytes, over the %d of a log event", b.Len(), MaxSize)
	}
	return b.Bytes(), nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Parse reads a document of one metric directive, as CloudWatch Logs
// would, and checks it against the specification: the metadata with an
// integer millisecond Timestamp, the directive's namespace, dimension sets
// and metric definitions, and at the top level a string for every
// dimension and a number or an array of numbers for every metric. Members
// the specification does not define are ignored in the metadata and kept
// as Properties at the top level.
func Parse(b []byte) (Document, error) {
	var d Document
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var root map[string]json.RawMessage
	if err := dec.Decode(&root); err != nil {
		return d, fmt.Errorf("emf: not a JSON object: %w", err)
	}
	if dec.More() {
		return d, errors.New("emf: data after the JSON object")
	}
	if len(b) > MaxSize {
		return d, fmt.Errorf("emf: document of %d bytes, over %d", len(b), MaxSize)
	}
	rawMeta, ok := root["_aws"]
	if !ok {
		return d, errors.New("emf: no _aws member")
	}
	var meta struct {
		Timestamp         json.RawMessage
		CloudWatchMetrics *[]struct {
			Namespace  *string
			Dimensions *[]json.RawMessage
			Metrics    *[]struct {
				Name              *string
				Unit              *string
				StorageResolution json.RawMessage
			}
		}
	}
	if err := strictUnmarshal(rawMeta, &meta); err != nil {
		return d, fmt.Errorf("emf: _aws: %w", err)
	}
	if meta.Timestamp == nil {
		return d, errors.New("emf: _aws has no Timestamp")
	}
	ms, err := strconv.ParseInt(string(meta.Timestamp), 10, 64)
	if err != nil {
		return d, fmt.Errorf("emf: Timestamp %s is not an integer number of milliseconds", meta.Timestamp)
	}
	d.Timestamp = time.UnixMilli(ms).UTC()
	if meta.CloudWatchMetrics == nil || len(*meta.CloudWatchMetrics) != 1 {
		return d, errors.New("emf: want exactly one metric directive in CloudWatchMetrics")
	}
	dir := (*meta.CloudWatchMetrics)[0]
	if dir.Namespace == nil || dir.Dimensions == nil || dir.Metrics == nil {
		return d, errors.New("emf: a metric directive needs Namespace, Dimensions and Metrics")
	}
	d.Namespace = *dir.Namespace
	for _, raw := range *dir.Dimensions {
		var set []string
		if raw = bytes.TrimSpace(raw); len(raw) == 0 || raw[0] != '[' || json.Unmarshal(raw, &set) != nil {
			return d, fmt.Errorf("emf: dimension set %s is not an array of strings", raw)
		}
		d.Dimensions = append(d.Dimensions, append([]string{}, set...))
	}
	for _, def := range *dir.Metrics {
		if def.Name == nil {
			return d, errors.New("emf: a metric definition has no Name")
		}
		m := Metric{Name: *def.Name}
		if def.Unit != nil {
			m.Unit = Unit(*def.Unit)
			if m.Unit == "" {
				return d, fmt.Errorf("emf: metric %q: empty unit", m.Name)
			}
		}
		if def.StorageResolution != nil {
			switch string(def.StorageResolution) {
			case "1":
				m.HighResolution = true
			case "60":
			default:
				return d, fmt.Errorf("emf: metric %q: StorageResolution %s, want 1 or 60", m.Name, def.StorageResolution)
			}
		}
		raw, ok := root[m.Name]
		if !ok {
			return d, fmt.Errorf("emf: metric %q has no value at the top level", m.Name)
		}
		if m.Values, err = parseValues(raw); err != nil {
			return d, fmt.Errorf("emf: metric %q: %w", m.Name, err)
		}
		d.Metrics = append(d.Metrics, m)
	}
	used := map[string]bool{"_aws": true}
	for _, m := range d.Metrics {
		used[m.Name] = true
	}
	for _, set := range d.Dimensions {
		for _, k := range set {
			raw, ok := root[k]
			if !ok {
				return d, fmt.Errorf("emf: dimension %q has no value at the top level", k)
			}
			var v string
			if err := json.Unmarshal(raw, &v); err != nil {
				return d, fmt.Errorf("emf: dimension %q: the value must be a string", k)
			}
			if d.DimensionValues == nil {
				d.DimensionValues = map[string]string{}
			}
			d.DimensionValues[k] = v
			used[k] = true
		}
	}
	for k, raw := range root {
		if used[k] {
			continue
		}
		var v any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			return d, err
		}
		if d.Properties == nil {
			d.Properties = map[string]any{}
		}
		d.Properties[k] = v
	}
	if err := d.Validate(); err != nil {
		return d, err
	}
	return d, nil
}

// strictUnmarshal decodes JSON whose member names must match the target's
// exactly (encoding/json alone matches them case-insensitively, and the
// specification's names are case-sensitive).
func strictUnmarshal(raw []byte, v any) error {
	var probe any
	if err := json.Unmarshal(raw, &probe); err != nil {
		return err
	}
	if err := checkCase(probe); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	return dec.Decode(v)
}

var specNames = []string{"Timestamp", "CloudWatchMetrics", "Namespace", "Dimensions", "Metrics", "Name", "Unit", "StorageResolution"}

func checkCase(v any) error {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			for _, n := range specNames {
				if k != n && strings.EqualFold(k, n) {
					return fmt.Errorf("member %q: the specification's name is %q (names are case-sensitive)", k, n)
				}
			}
			if err := checkCase(x); err != nil {
				return err
			}
		}
	case []any:
		for _, x := range v {
			if err := checkCase(x); err != nil {
				return err
			}
		}
	}
	return nil
}

func parseValues(raw json.RawMessage) ([]float64, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '[' {
		var elems []json.RawMessage
		if err := json.Unmarshal(raw, &elems); err != nil {
			return nil, errors.New("the value must be a number or an array of numbers")
		}
		if len(elems) == 0 || len(elems) > MaxValues {
			return nil, fmt.Errorf("%d values, want 1 to %d", len(elems), MaxValues)
		}
		out := make([]float64, len(elems))
		for i, e := range elems {
			f, err := parseNumber(e)
			if err != nil {
				return nil, err
			}
			out[i] = f
		}
		return out, nil
	}
	f, err := parseNumber(raw)
	if err != nil {
		return nil, err
	}
	return []float64{f}, nil
}

// parseNumber reads a JSON number (not a string holding one, which
// encoding/json would take for a json.Number).
func parseNumber(raw json.RawMessage) (float64, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
		return 0, errors.New("the value must be a number or an array of numbers")
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return 0, fmt.Errorf("value %s: %w", raw, err)
	}
	return f, nil
}

// Writer writes documents to an io.Writer, one line each (what CloudWatch
// Logs takes as one event when the writer is a Lambda function's stdout).
// A nil *Writer writes nothing: metrics are off.
type Writer struct {
	mu sync.Mutex
	w  io.Writer
}

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Emit writes d as one line, in a single Write. It does nothing on a nil
// Writer.
func (w *Writer) Emit(d Document) error {
	if w == nil {
		return nil
	}
	b, err := d.MarshalJSON()
	if err != nil {
		return err
	}
	b = append(b, '\n')
	w.mu.Lock()
	defer w.mu.Unlock()
	_, err = w.w.Write(b)
	return err
}
