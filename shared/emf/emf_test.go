package emf

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

var at = time.Date(2026, 11, 25, 12, 0, 0, 250_000_000, time.UTC)

func sample() Document {
	return Document{
		Timestamp:       at,
		Namespace:       "Smoothcast",
		Dimensions:      [][]string{{"Channel"}, {}},
		DimensionValues: map[string]string{"Channel": "demo"},
		Metrics: []Metric{
			{Name: "FragmentToManifestDelay", Unit: Milliseconds, Values: []float64{250, 1250.5}},
			{Name: "EventsProcessed", Unit: Count, Values: []float64{1}},
			{Name: "FragmentsPublished", Unit: Count, HighResolution: true, Values: []float64{2}},
		},
		Properties: map[string]any{"track": "video_800000", "key": "live/demo.isml/x"},
	}
}

// The exact bytes: metadata first (Timestamp in milliseconds, one
// directive with both dimension sets, the definitions in order), then the
// dimension values, the metric values (an array for several samples) and
// the properties.
func TestGolden(t *testing.T) {
	const want = `{"_aws":{"Timestamp":1795608000250,"CloudWatchMetrics":[{"Namespace":"Smoothcast","Dimensions":[["Channel"],[]],` +
		`"Metrics":[{"Name":"FragmentToManifestDelay","Unit":"Milliseconds"},{"Name":"EventsProcessed","Unit":"Count"},` +
		`{"Name":"FragmentsPublished","Unit":"Count","StorageResolution":1}]}]},` +
		`"Channel":"demo","FragmentToManifestDelay":[250,1250.5],"EventsProcessed":1,"FragmentsPublished":2,` +
		`"key":"live/demo.isml/x","track":"video_800000"}`
	b, err := json.Marshal(sample())
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != want {
		t.Errorf("got\n%s\nwant\n%s", b, want)
	}
	var buf bytes.Buffer
	if err := NewWriter(&buf).Emit(sample()); err != nil || buf.String() != want+"\n" {
		t.Errorf("Emit wrote %q, %v: want the document and a newline", buf.String(), err)
	}
}

// What is written parses back to the same document, and the generic
// reading of the JSON has the members where the specification puts them.
func TestParseBack(t *testing.T) {
	d := sample()
	b, err := d.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Timestamp.Equal(d.Timestamp) || got.Namespace != d.Namespace || !reflect.DeepEqual(got.Dimensions, d.Dimensions) ||
		!reflect.DeepEqual(got.DimensionValues, d.DimensionValues) || !reflect.DeepEqual(got.Metrics, d.Metrics) ||
		!reflect.DeepEqual(got.Properties, d.Properties) {
		t.Errorf("parsed back\n%+v\nwant\n%+v", got, d)
	}
	var generic struct {
		AWS struct {
			Timestamp         int64
			CloudWatchMetrics []struct {
				Namespace  string
				Dimensions [][]string
				Metrics    []map[string]any
			}
		} `json:"_aws"`
		Channel string
		Delay   []float64 `json:"FragmentToManifestDelay"`
		Events  float64   `json:"EventsProcessed"`
	}
	if err := json.Unmarshal(b, &generic); err != nil {
		t.Fatal(err)
	}
	if generic.AWS.Timestamp != at.UnixMilli() || len(generic.AWS.CloudWatchMetrics) != 1 || generic.Channel != "demo" ||
		len(generic.Delay) != 2 || generic.Events != 1 || len(generic.AWS.CloudWatchMetrics[0].Dimensions[1]) != 0 {
		t.Errorf("generic reading: %+v", generic)
	}
}

// The specification's example parses.
func TestParseSpecExample(t *testing.T) {
	const example = `{
  "_aws": {
    "Timestamp": 1574109732004,
    "CloudWatchMetrics": [
      {
        "Namespace": "lambda-function-metrics",
        "Dimensions": [["functionVersion"]],
        "Metrics": [{"Name": "time", "Unit": "Milliseconds", "StorageResolution": 60}]
      }
    ]
  },
  "functionVersion": "$LATEST",
  "time": 100,
  "requestId": "989ffbf8-9ace-4817-a57c-e4dd734019ee"
}`
	d, err := Parse([]byte(example))
	if err != nil {
		t.Fatal(err)
	}
	if d.Timestamp.UnixMilli() != 1574109732004 || d.DimensionValues["functionVersion"] != "$LATEST" ||
		len(d.Metrics) != 1 || d.Metrics[0].Values[0] != 100 || d.Metrics[0].HighResolution || d.Properties["requestId"] == nil {
		t.Errorf("parsed %+v", d)
	}
}

func TestInvalidDocumentsAreRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Document)
		want   string
	}{
		{"no namespace", func(d *Document) { d.Namespace = "" }, "namespace"},
		{"AWS namespace", func(d *Document) { d.Namespace = "AWS/Lambda" }, "reserved"},
		{"no dimension set", func(d *Document) { d.Dimensions = nil }, "no dimension set"},
		{"dimension without value", func(d *Document) { d.DimensionValues = nil }, "no value"},
		{"value without set", func(d *Document) { d.DimensionValues["Track"] = "x" }, "in no dimension set"},
		{"blank dimension value", func(d *Document) { d.DimensionValues["Channel"] = " " }, "not blank"},
		{"long dimension value", func(d *Document) { d.DimensionValues["Channel"] = strings.Repeat("a", 1025) }, "1024"},
		{"too many keys", func(d *Document) {
			var set []string
			for i := range 31 {
				k := string(rune('a'+i%26)) + strings.Repeat("x", i/26)
				set = append(set, k)
				d.DimensionValues[k] = "v"
			}
			d.Dimensions = append(d.Dimensions, set)
		}, "more than 30"},
		{"no metrics", func(d *Document) { d.Metrics = nil }, "0 metrics"},
		{"no values", func(d *Document) { d.Metrics[0].Values = nil }, "0 values"},
		{"101 values", func(d *Document) { d.Metrics[0].Values = make([]float64, 101) }, "101 values"},
		{"NaN", func(d *Document) { d.Metrics[0].Values = []float64{math.NaN()} }, "not a JSON number"},
		{"bad unit", func(d *Document) { d.Metrics[0].Unit = "Furlongs" }, "not a CloudWatch unit"},
		{"metric named as a dimension", func(d *Document) { d.Metrics[0].Name = "Channel" }, "name of a dimension"},
		{"property named as a metric", func(d *Document) { d.Properties["EventsProcessed"] = 1 }, "name of a metric"},
		{"metric named _aws", func(d *Document) { d.Metrics[0].Name = "_aws" }, "metadata"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := sample()
			tc.change(&d)
			if _, err := json.Marshal(d); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one with %q", err, tc.want)
			}
			var buf bytes.Buffer
			if err := NewWriter(&buf).Emit(d); err == nil || buf.Len() != 0 {
				t.Errorf("Emit wrote %q (%v)", buf.String(), err)
			}
		})
	}
}

func TestParseRefusesWhatTheSpecificationForbids(t *testing.T) {
	const ok = `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[["D"]],"Metrics":[{"Name":"M","Unit":"Count"}]}]},"D":"d","M":1}`
	if _, err := Parse([]byte(ok)); err != nil {
		t.Fatalf("the base document: %v", err)
	}
	for _, tc := range []struct{ name, old, new, want string }{
		{"no _aws", `"_aws"`, `"aws"`, "no _aws"},
		{"timestamp as a string", `"Timestamp":1`, `"Timestamp":"1"`, "Timestamp"},
		{"fractional timestamp", `"Timestamp":1`, `"Timestamp":1.5`, "Timestamp"},
		{"no timestamp", `"Timestamp":1,`, ``, "no Timestamp"},
		{"names are case-sensitive", `"Namespace"`, `"namespace"`, "case-sensitive"},
		{"metric value a string", `"M":1`, `"M":"1"`, "number"},
		{"metric value missing", `,"M":1`, ``, "no value"},
		{"metric array of strings", `"M":1`, `"M":["1"]`, "number"},
		{"empty metric array", `"M":1`, `"M":[]`, "0 values"},
		{"dimension value a number", `"D":"d"`, `"D":4`, "string"},
		{"dimension value missing", `"D":"d",`, ``, "no value"},
		{"dimension set not an array", `[["D"]]`, `["D"]`, "not an array"},
		{"bad storage resolution", `"Unit":"Count"`, `"Unit":"Count","StorageResolution":5`, "StorageResolution"},
		{"two directives", `}]},"D"`, `},{"Namespace":"N","Dimensions":[[]],"Metrics":[]}]},"D"`, "exactly one"},
		{"trailing data", `"M":1}`, `"M":1}{}`, "after"},
		{"not an object", ok, `[1]`, "not a JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := strings.Replace(ok, tc.old, tc.new, 1)
			if doc == ok {
				t.Fatalf("%q is not in the base document", tc.old)
			}
			if _, err := Parse([]byte(doc)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: error %v, want one with %q", doc, err, tc.want)
			}
		})
	}
}

// A nil Writer is metrics off.
func TestNilWriterWritesNothing(t *testing.T) {
	var w *Writer
	if err := w.Emit(sample()); err != nil {
		t.Fatal(err)
	}
}
