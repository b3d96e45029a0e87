package awsctl

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/smithy-go/encoding/cbor"
)

// fakeAWS answers the calls this package makes, each in its service's
// wire protocol: CloudFormation and Auto Scaling in AWS Query (form in,
// XML out), CloudWatch in Smithy RPC v2 CBOR, SSM in AWS JSON 1.1. It
// records every call, and moves each group's instances one lifecycle step
// per DescribeAutoScalingGroups, as EC2 would between two polls.
type fakeAWS struct {
	t      *testing.T
	mu     sync.Mutex
	stacks map[string]map[string]string // stack name: outputs
	groups map[string]*fakeGroup
	alarms map[string]bool // alarm name: actions enabled
	params map[string]string
	calls  []string
	nextID int
	// cfg is an SDK configuration whose clients all call the fake.
	cfg aws.Config
}

type fakeGroup struct {
	zone              string
	min, max, desired int
	instances         []*fakeInstance
	// stuck: its instances never get past Pending.
	stuck bool
}

type fakeInstance struct{ id, state string }

// newFake starts the fake.
func newFake(t *testing.T) *fakeAWS {
	f := &fakeAWS{t: t, stacks: map[string]map[string]string{}, groups: map[string]*fakeGroup{}, alarms: map[string]bool{}, params: map[string]string{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	f.cfg = aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		BaseEndpoint: aws.String(srv.URL),
		HTTPClient:   srv.Client(),
		Retryer:      func() aws.Retryer { return aws.NopRetryer{} },
	}
	return f
}

// group adds a relay group, running (one instance in service) or stopped.
func (f *fakeAWS) group(name, zone string, running bool) *fakeGroup {
	g := &fakeGroup{zone: zone}
	if running {
		g.min, g.max, g.desired = 1, 1, 1
		g.instances = []*fakeInstance{{id: f.instanceID(), state: "InService"}}
	}
	f.groups[name] = g
	return g
}

func (f *fakeAWS) instanceID() string {
	f.nextID++
	return fmt.Sprintf("i-%017d", f.nextID)
}

// allCalls are the calls made so far.
func (f *fakeAWS) allCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// mutations are the calls that change something, in order.
func (f *fakeAWS) mutations() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.DeleteFunc(slices.Clone(f.calls), func(c string) bool { return strings.HasPrefix(c, "Describe") || strings.HasPrefix(c, "Get") })
}

// call records a call.
func (f *fakeAWS) call(format string, args ...any) {
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

func (f *fakeAWS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	switch {
	case strings.HasPrefix(r.URL.Path, "/service/GraniteServiceVersion20100801/operation/"):
		f.cloudWatch(w, strings.TrimPrefix(r.URL.Path, "/service/GraniteServiceVersion20100801/operation/"), body)
	case r.Header.Get("X-Amz-Target") == "AmazonSSM.GetParameter":
		f.getParameter(w, body)
	case r.Header.Get("Content-Type") == "application/x-www-form-urlencoded":
		form, err := url.ParseQuery(string(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.query(w, form)
	default:
		f.t.Errorf("fake AWS: unexpected request %s %s %v", r.Method, r.URL, r.Header)
		http.Error(w, "unexpected", http.StatusBadRequest)
	}
}

// members reads an AWS Query list: name.member.1, name.member.2, …
func members(form url.Values, name string) []string {
	var v []string
	for i := 1; form.Has(fmt.Sprintf("%s.member.%d", name, i)); i++ {
		v = append(v, form.Get(fmt.Sprintf("%s.member.%d", name, i)))
	}
	return v
}

type xmlMember[T any] struct {
	Members []T `xml:"member"`
}

type xmlOutput struct{ OutputKey, OutputValue string }

type xmlStack struct {
	StackName, StackStatus string
	CreationTime           string
	Outputs                xmlMember[xmlOutput]
}

type xmlInstance struct {
	InstanceId, AvailabilityZone, LifecycleState, HealthStatus string
}

type xmlGroup struct {
	AutoScalingGroupName              string
	MinSize, MaxSize, DesiredCapacity int
	Instances                         xmlMember[xmlInstance]
}

type stacksResult struct{ Stacks xmlMember[xmlStack] }

type groupsResult struct{ AutoScalingGroups xmlMember[xmlGroup] }

// queryResponse writes an AWS Query response: <{action}Response><{action}Result>.
func queryResponse(w http.ResponseWriter, action string, result any) {
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<%sResponse xmlns="https://fake.invalid/doc/"><%sResult>`, action, action)
	if result != nil {
		b, err := xml.Marshal(result)
		if err != nil {
			panic(err)
		}
		// Marshal wraps the value in an element named after its type: keep
		// what is inside it.
		s := string(b)
		s = s[strings.Index(s, ">")+1 : strings.LastIndex(s, "<")]
		io.WriteString(w, s)
	}
	fmt.Fprintf(w, `</%sResult><ResponseMetadata><RequestId>fake</RequestId></ResponseMetadata></%sResponse>`, action, action)
}

// queryError writes an AWS Query error.
func queryError(w http.ResponseWriter, code, message string) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(http.StatusBadRequest)
	fmt.Fprintf(w, `<ErrorResponse><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>fake</RequestId></ErrorResponse>`, code, message)
}

func (f *fakeAWS) query(w http.ResponseWriter, form url.Values) {
	action := form.Get("Action")
	switch action {
	case "DescribeStacks":
		name := form.Get("StackName")
		f.call("DescribeStacks %s", name)
		outputs, ok := f.stacks[name]
		if !ok {
			queryError(w, "ValidationError", "Stack with id "+name+" does not exist")
			return
		}
		st := xmlStack{StackName: name, StackStatus: "UPDATE_COMPLETE", CreationTime: "2026-12-01T10:00:00Z"}
		for _, k := range slices.Sorted(maps.Keys(outputs)) {
			st.Outputs.Members = append(st.Outputs.Members, xmlOutput{k, outputs[k]})
		}
		queryResponse(w, action, stacksResult{xmlMember[xmlStack]{[]xmlStack{st}}})
	case "DescribeAutoScalingGroups":
		names := members(form, "AutoScalingGroupNames")
		f.call("DescribeAutoScalingGroups %s", strings.Join(names, ","))
		var groups []xmlGroup
		for _, n := range names {
			g, ok := f.groups[n]
			if !ok {
				continue // as AWS does: an unknown name is left out
			}
			g.step(f)
			xg := xmlGroup{AutoScalingGroupName: n, MinSize: g.min, MaxSize: g.max, DesiredCapacity: g.desired}
			for _, i := range g.instances {
				xg.Instances.Members = append(xg.Instances.Members, xmlInstance{i.id, g.zone, i.state, "Healthy"})
			}
			groups = append(groups, xg)
		}
		queryResponse(w, action, groupsResult{xmlMember[xmlGroup]{groups}})
	case "UpdateAutoScalingGroup":
		name := form.Get("AutoScalingGroupName")
		g, ok := f.groups[name]
		if !ok {
			queryError(w, "ValidationError", "AutoScalingGroup name not found - "+name)
			return
		}
		g.min, _ = strconv.Atoi(form.Get("MinSize"))
		g.max, _ = strconv.Atoi(form.Get("MaxSize"))
		g.desired, _ = strconv.Atoi(form.Get("DesiredCapacity"))
		note := ""
		if g.desired == 0 && f.anyArmed() {
			note = " (alarm actions on)"
		}
		f.call("UpdateAutoScalingGroup %s %d/%d/%d%s", name, g.min, g.max, g.desired, note)
		queryResponse(w, action, nil)
	default:
		f.t.Errorf("fake AWS: unexpected action %s", action)
		queryError(w, "InvalidAction", action)
	}
}

// anyArmed: an alarm's actions are enabled.
func (f *fakeAWS) anyArmed() bool {
	for _, on := range f.alarms {
		if on {
			return true
		}
	}
	return false
}

// step moves the group one step towards its desired capacity: a
// terminating instance is gone, a pending one in service (unless stuck),
// then one more is launched or one in service terminated.
func (g *fakeGroup) step(f *fakeAWS) {
	g.instances = slices.DeleteFunc(g.instances, func(i *fakeInstance) bool { return i.state == "Terminating" })
	active := 0
	for _, i := range g.instances {
		if i.state == "Pending" && !g.stuck {
			i.state = "InService"
		}
		active++
	}
	switch {
	case active < g.desired:
		g.instances = append(g.instances, &fakeInstance{id: f.instanceID(), state: "Pending"})
	case active > g.desired:
		g.instances[0].state = "Terminating"
	}
}

// cborStrings reads a CBOR list of strings.
func cborStrings(v cbor.Value) []string {
	l, _ := v.(cbor.List)
	var s []string
	for _, e := range l {
		if str, ok := e.(cbor.String); ok {
			s = append(s, string(str))
		}
	}
	return s
}

func (f *fakeAWS) cloudWatch(w http.ResponseWriter, op string, body []byte) {
	in := cbor.Map{}
	if len(body) > 0 {
		v, err := cbor.Decode(body)
		if err != nil {
			f.t.Errorf("fake CloudWatch %s: %v", op, err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		in, _ = v.(cbor.Map)
	}
	names := cborStrings(in["AlarmNames"])
	w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
	w.Header().Set("Content-Type", "application/cbor")
	switch op {
	case "DisableAlarmActions", "EnableAlarmActions":
		note := ""
		if op == "EnableAlarmActions" {
			for name, g := range f.groups {
				if !slices.ContainsFunc(g.instances, func(i *fakeInstance) bool { return i.state == "InService" }) {
					note += " (" + name + " not in service)"
				}
			}
		}
		f.call("%s %s%s", op, strings.Join(names, ","), note)
		for _, n := range names {
			if _, ok := f.alarms[n]; ok {
				f.alarms[n] = op == "EnableAlarmActions"
			}
		}
		w.Write(cbor.Encode(cbor.Map{}))
	case "DescribeAlarms":
		f.call("DescribeAlarms %s", strings.Join(names, ","))
		var list cbor.List
		for _, n := range names {
			if on, ok := f.alarms[n]; ok {
				list = append(list, cbor.Map{"AlarmName": cbor.String(n), "ActionsEnabled": cbor.Bool(on), "StateValue": cbor.String("OK")})
			}
		}
		w.Write(cbor.Encode(cbor.Map{"MetricAlarms": list}))
	default:
		f.t.Errorf("fake CloudWatch: unexpected operation %s", op)
		http.Error(w, op, http.StatusBadRequest)
	}
}

func (f *fakeAWS) getParameter(w http.ResponseWriter, body []byte) {
	var in struct {
		Name           string
		WithDecryption bool
	}
	if err := json.Unmarshal(body, &in); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.call("GetParameter %s decrypt=%t", in.Name, in.WithDecryption)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	v, ok := f.params[in.Name]
	if !ok {
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"__type": "ParameterNotFound", "message": "parameter " + in.Name})
		return
	}
	if !in.WithDecryption {
		v = "AQICAHencrypted"
	}
	json.NewEncoder(w).Encode(map[string]any{"Parameter": map[string]any{"Name": in.Name, "Type": "SecureString", "Value": v}})
}

// fakeClock is a clock whose After fires at once, the time moved on by d:
// a wait's polls run back to back and its timeout is reached by counting.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}
