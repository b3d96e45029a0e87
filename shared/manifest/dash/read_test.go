package dash

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	dashmpd "github.com/Eyevinn/dash-mpd/mpd"

	"github.com/smoothcast/smoothcast/internal/manifesttest"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// What Render writes reads back: every Representation's template in force
// lists the fragments of the timeline its AdaptationSet was rendered
// from, for the fixtures (a restarted encoder's two Periods among them)
// as each request varies them.
func TestParseReadsWhatRenderWrites(t *testing.T) {
	for i, f := range append(manifesttest.Fixtures(), restarted) {
		for v, change := range manifesttest.Requests() {
			p := f()
			change(p)
			name := fmt.Sprintf("fixture %d, request %d", i, v)
			want, err := build(p, Options{})
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			b, err := Render(p, Options{})
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			m, err := Parse(b)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if m.GetType() != want.Type || len(m.Periods) != len(want.Periods) {
				t.Fatalf("%s: %s MPD of %d periods, want %s of %d", name, m.GetType(), len(m.Periods), want.Type, len(want.Periods))
			}
			for pi, per := range m.Periods {
				for ai, as := range per.AdaptationSets {
					was := want.Periods[pi].Assets[ai]
					var frags []timeline.Fragment
					for e := range was.SegmentTemplate.Timeline.All() {
						frags = append(frags, e.Fragment)
					}
					for ri, rep := range as.Representations {
						tmpl := TemplateOf(per, as, rep)
						segs, err := tmpl.Segments()
						if err != nil {
							t.Fatalf("%s: %v", name, err)
						}
						var got []timeline.Fragment
						for _, s := range segs {
							got = append(got, timeline.Fragment{Start: s.Time, Duration: s.Duration})
						}
						wr := was.Representations[ri]
						wantMedia := was.SegmentTemplate.Media
						if wr.SegmentTemplate != nil {
							wantMedia = wr.SegmentTemplate.Media
						}
						if !slices.Equal(got, frags) || rep.Id != wr.ID || tmpl.Media != wantMedia ||
							tmpl.Timescale != was.SegmentTemplate.Timescale || tmpl.PresentationTimeOffset != was.SegmentTemplate.PresentationTimeOffset {
							t.Errorf("%s: Representation %s lists %v from %+v, want %v from %+v", name, rep.Id, got, tmpl, frags, was.SegmentTemplate)
						}
					}
				}
			}
		}
	}
}

// Each attribute of the template in force comes from the lowest level
// that gives it: the Representation's, else the AdaptationSet's, else the
// Period's.
func TestTemplateOfInheritsAttributeByAttribute(t *testing.T) {
	const doc = `<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static">
  <Period id="p">
    <SegmentTemplate timescale="1000" startNumber="5" media="period-$Number$.m4s"></SegmentTemplate>
    <AdaptationSet>
      <SegmentTemplate timescale="90000" initialization="init-$RepresentationID$.mp4">
        <SegmentTimeline><S t="0" d="180000" r="1"></S></SegmentTimeline>
      </SegmentTemplate>
      <Representation id="a" bandwidth="1000"></Representation>
      <Representation id="b" bandwidth="2000">
        <SegmentTemplate media="b-$Time$.m4s" presentationTimeOffset="7"></SegmentTemplate>
      </Representation>
    </AdaptationSet>
    <AdaptationSet>
      <Representation id="c" bandwidth="3000"></Representation>
    </AdaptationSet>
  </Period>
  <Period id="q">
    <AdaptationSet><Representation id="d" bandwidth="4000"></Representation></AdaptationSet>
  </Period>
</MPD>`
	m, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for rep, tmpl := range Representations(m) {
		if tmpl == nil {
			got[rep.Id] = "none"
			continue
		}
		var urls []string
		if segs, err := tmpl.Segments(); err == nil {
			for _, s := range segs {
				u, _ := tmpl.MediaURL(s)
				urls = append(urls, u)
			}
		}
		init, _ := tmpl.InitURL()
		got[rep.Id] = fmt.Sprintf("init %s media %s timescale %d pto %d %v", init, tmpl.Media, tmpl.Timescale, tmpl.PresentationTimeOffset, urls)
	}
	want := map[string]string{
		"a": "init init-a.mp4 media period-$Number$.m4s timescale 90000 pto 0 [period-5.m4s period-6.m4s]",
		"b": "init init-b.mp4 media b-$Time$.m4s timescale 90000 pto 7 [b-0.m4s b-180000.m4s]",
		"c": "init  media period-$Number$.m4s timescale 1000 pto 0 []",
		"d": "none",
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("Representation %s: %s, want %s", id, got[id], w)
		}
	}
	if m.GetType() != "static" {
		t.Errorf("type %s, want static", m.GetType())
	}
}

// S elements start at t, else where the previous ends; r repeats, a
// negative r up to the next t.
func TestSegmentsExpandTheTimeline(t *testing.T) {
	u64 := func(v uint64) *uint64 { return &v }
	for _, tc := range []struct {
		name string
		s    []*dashmpd.S
		want []uint64
		err  string
	}{
		{"t, r and an open r", []*dashmpd.S{{T: u64(100), D: 10, R: 2}, {D: 5, R: -1}, {T: u64(150), D: 10}}, []uint64{100, 110, 120, 130, 135, 140, 145, 150}, ""},
		{"an open r at the end", []*dashmpd.S{{T: u64(100), D: 10, R: 2}, {D: 5, R: -1}}, nil, "r=-1 needs the next S's t"},
		{"a start before the previous end", []*dashmpd.S{{T: u64(100), D: 10, R: 1}, {T: u64(105), D: 10}}, nil, "S 1 starts at 105, before the previous ends (120)"},
		{"an open r up to an earlier t", []*dashmpd.S{{T: u64(100), D: 10, R: -1}, {T: u64(50), D: 10}}, nil, "S 1 starts at 50"},
		{"no duration", []*dashmpd.S{{T: u64(0)}}, nil, "S 0 has no duration"},
		{"too many segments", []*dashmpd.S{{T: u64(0), D: 1, R: MaxSegments}}, nil, fmt.Sprintf("more than %d segments", MaxSegments)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmpl := &Template{StartNumber: 1, Timeline: &dashmpd.SegmentTimelineType{S: tc.s}}
			segs, err := tmpl.Segments()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			var got []uint64
			for i, s := range segs {
				got = append(got, s.Time)
				if s.Number != uint64(i)+1 {
					t.Errorf("segment %d has number %d", i, s.Number)
				}
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("Segments = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	if _, err := (&Template{}).Segments(); err == nil {
		t.Error("a template without a SegmentTimeline expands")
	}
}

func TestFillSubstitutesIdentifiers(t *testing.T) {
	for _, tc := range []struct{ tmpl, want, err string }{
		{"QualityLevels($RepresentationID$)/Fragments(video=$Time$)", "QualityLevels(300000)/Fragments(video=42)", ""},
		{"seg-$Number%05d$-$Bandwidth$$$.m4s", "seg-00007-300100$.m4s", ""},
		{"t-$Time%03d$", "t-042", ""},
		{"$Foo$", "", "identifier $Foo$"},
		{"a$Time", "", "unterminated"},
		{"$Number%5x$", "", "format"},
		{"$Number%0999999999d$", "", "format"},
	} {
		got, err := Fill(tc.tmpl, "300000", 300100, 42, 7)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("Fill(%q) = %q, %v; want an error %q", tc.tmpl, got, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("Fill(%q) = %q, %v; want %q", tc.tmpl, got, err, tc.want)
		}
	}
}

func TestParseRefusesWhatIsNoMPD(t *testing.T) {
	for name, doc := range map[string]string{
		"not XML":         "<MPD",
		"another element": "<SmoothStreamingMedia></SmoothStreamingMedia>",
	} {
		if _, err := Parse([]byte(doc)); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

// parseWithin is Parse that fails the test instead of hanging.
func parseWithin(t testing.TB, b []byte, d time.Duration) (*dashmpd.MPD, error) {
	t.Helper()
	type result struct {
		m   *dashmpd.MPD
		err error
	}
	done := make(chan result, 1)
	go func() {
		m, err := Parse(b)
		done <- result{m, err}
	}()
	select {
	case r := <-done:
		return r.m, r.err
	case <-time.After(d):
		t.Fatalf("Parse of %q did not return within %v", b, d)
		return nil, nil
	}
}

// dash-mpd's decoder loops for ever on a '>' in character data: Parse
// escapes it, and reads what the MPD says.
func TestParseTakesGreaterThanInText(t *testing.T) {
	for _, tc := range []struct {
		doc   string
		title string
	}{
		{`<MPD><ProgramInformation><Title>a>b</Title></ProgramInformation></MPD>`, "a>b"},
		{`<MPD><ProgramInformation><Title><![CDATA[c>d]]>e>f</Title></ProgramInformation></MPD>`, "c>de>f"},
		{`<!-- a > b --><MPD type="dynamic"><ProgramInformation lang="x>y"><Title>t</Title></ProgramInformation></MPD>`, "t"},
		{`<?xml version="1.0"?><!DOCTYPE MPD [<!ENTITY x "y>">]>><MPD><ProgramInformation><Title>></Title></ProgramInformation></MPD>`, ">"},
		{`>MPD><Period/>`, ""},
	} {
		m, err := parseWithin(t, []byte(tc.doc), 5*time.Second)
		if tc.title == "" {
			continue // only that it returns
		}
		if err != nil {
			t.Errorf("%s: %v", tc.doc, err)
			continue
		}
		if got := m.ProgramInformation[0].Title; got != tc.title {
			t.Errorf("%s: title %q, want %q", tc.doc, got, tc.title)
		}
	}
}

// FuzzEscapeGreaterThan: escaping changes nothing encoding/xml reads, and
// Parse always returns.
func FuzzEscapeGreaterThan(f *testing.F) {
	f.Add([]byte(`<MPD><ProgramInformation><Title>a>b</Title></ProgramInformation></MPD>`))
	f.Add([]byte(`<!DOCTYPE x [<!ENTITY a "]>">]><MPD a='>'><![CDATA[>]]>><?p >?></MPD>`))
	f.Fuzz(func(t *testing.T, in []byte) {
		// (encoding/xml refuses an entity in text that ends the
		// document, where it takes the character itself: not an MPD.)
		if want, err := xmlTokens(in); err == nil && len(want) > 0 && !isCharData(want[len(want)-1]) {
			got, err := xmlTokens(escapeGreaterThan(in))
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("escaping changed what encoding/xml reads:\n%q\n%q\n%v", want, got, err)
			}
		}
		_, _ = parseWithin(t, in, 10*time.Second)
	})
}

func isCharData(tok xml.Token) bool {
	_, ok := tok.(xml.CharData)
	return ok
}

// xmlTokens is every token encoding/xml reads from b.
func xmlTokens(b []byte) ([]xml.Token, error) {
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	var toks []xml.Token
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			return toks, nil
		}
		if err != nil {
			return nil, err
		}
		toks = append(toks, xml.CopyToken(tok))
	}
}
