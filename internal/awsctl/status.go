package awsctl

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// Status is a stack's relays, alarms, ingest URLs and certificate.
type Status struct {
	Stack, Region string
	Groups        []GroupStatus
	Alarms        []AlarmStatus
	// Outputs are the stack's outputs (IngestOutputs are the URLs).
	Outputs map[string]string
	// Certificate is the ingest's certificate (nil when ingest is plain).
	Certificate *Certificate
}

// GroupStatus is one relay group.
type GroupStatus struct {
	Name  string
	State State
	// Instances are those not terminated: normally none or one.
	Instances []Instance
}

// Instance is one of a group's instances.
type Instance struct {
	ID, Zone, Lifecycle, Health string
}

// AlarmStatus is one of the relays' alarms.
type AlarmStatus struct {
	Name string
	// Found is false when the stack names an alarm that does not exist.
	Found          bool
	ActionsEnabled bool
	State          string
}

// Certificate is what status shows of the ingest's TLS certificate:
// never the key.
type Certificate struct {
	Parameter string
	// Fingerprint is the SHA-256 of the certificate's DER, in the form
	// `openssl x509 -noout -fingerprint -sha256` prints it.
	Fingerprint string
	Subject     string
	NotAfter    time.Time
}

// Status reads the stack's relay groups, alarms, ingest URLs and, when
// ingest is TLS, the certificate's fingerprint.
func (c *Control) Status(ctx context.Context) (Status, error) {
	s, groups, err := c.relays(ctx)
	if err != nil {
		return Status{}, err
	}
	st := Status{Stack: c.Stack, Region: c.region, Outputs: s.outputs}
	for _, g := range groups {
		gs := GroupStatus{Name: aws.ToString(g.AutoScalingGroupName), State: stateOf(g)}
		for _, i := range live(g) {
			gs.Instances = append(gs.Instances, Instance{
				ID: aws.ToString(i.InstanceId), Zone: aws.ToString(i.AvailabilityZone),
				Lifecycle: string(i.LifecycleState), Health: aws.ToString(i.HealthStatus),
			})
		}
		st.Groups = append(st.Groups, gs)
	}
	if st.Alarms, err = c.alarmStatus(ctx, s.alarms); err != nil {
		return st, err
	}
	if p := s.outputs[OutputTLSCertificateParameter]; p != "" {
		if st.Certificate, err = c.certificate(ctx, p); err != nil {
			return st, err
		}
	}
	return st, nil
}

// alarmStatus describes the named alarms, metric or composite.
func (c *Control) alarmStatus(ctx context.Context, names []string) ([]AlarmStatus, error) {
	if len(names) == 0 {
		return nil, nil
	}
	found := map[string]AlarmStatus{}
	p := cloudwatch.NewDescribeAlarmsPaginator(c.cw, &cloudwatch.DescribeAlarmsInput{
		AlarmNames: names, AlarmTypes: []cwtypes.AlarmType{cwtypes.AlarmTypeMetricAlarm, cwtypes.AlarmTypeCompositeAlarm},
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("stack %s: alarms %s: %w", c.Stack, strings.Join(names, ", "), err)
		}
		for _, a := range page.MetricAlarms {
			found[aws.ToString(a.AlarmName)] = AlarmStatus{Found: true, ActionsEnabled: aws.ToBool(a.ActionsEnabled), State: string(a.StateValue)}
		}
		for _, a := range page.CompositeAlarms {
			found[aws.ToString(a.AlarmName)] = AlarmStatus{Found: true, ActionsEnabled: aws.ToBool(a.ActionsEnabled), State: string(a.StateValue)}
		}
	}
	alarms := make([]AlarmStatus, 0, len(names))
	for _, n := range names {
		a := found[n]
		a.Name = n
		alarms = append(alarms, a)
	}
	return alarms, nil
}

// certificate reads the parameter (decrypted) and returns its first PEM
// certificate's fingerprint; nothing of the key leaves this function.
func (c *Control) certificate(ctx context.Context, name string) (*Certificate, error) {
	out, err := c.ssm.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(true)})
	if err != nil {
		return nil, fmt.Errorf("stack %s: TLS certificate parameter %s: %w", c.Stack, name, err)
	}
	if out.Parameter == nil {
		return nil, fmt.Errorf("stack %s: TLS certificate parameter %s: no value", c.Stack, name)
	}
	cert, err := ParseCertificate([]byte(aws.ToString(out.Parameter.Value)))
	if err != nil {
		return nil, fmt.Errorf("stack %s: TLS certificate parameter %s: %w", c.Stack, name, err)
	}
	cert.Parameter = name
	return cert, nil
}

// ParseCertificate finds the first CERTIFICATE block in PEM data (other
// blocks, such as a private key, are skipped) and returns its
// fingerprint, subject and expiry.
func ParseCertificate(data []byte) (*Certificate, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, fmt.Errorf("no PEM CERTIFICATE block")
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		x, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate: %w", err)
		}
		return &Certificate{Fingerprint: Fingerprint(b.Bytes), Subject: x.Subject.String(), NotAfter: x.NotAfter}, nil
	}
}

// Fingerprint is the SHA-256 of a certificate's DER as OpenSSL 3 prints
// it: "sha256 Fingerprint=" and the bytes in upper-case hex, separated by
// colons.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	hex := make([]string, len(sum))
	for i, b := range sum {
		hex[i] = fmt.Sprintf("%02X", b)
	}
	return "sha256 Fingerprint=" + strings.Join(hex, ":")
}

// WriteText prints the status for a person to read.
func (st Status) WriteText(out io.Writer) error {
	w := &bytes.Buffer{}
	fmt.Fprintf(w, "stack %s (%s)\n\n", st.Stack, st.Region)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RELAY GROUP\tSTATE\tINSTANCE\tZONE\tLIFECYCLE")
	for _, g := range st.Groups {
		if len(g.Instances) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\n", g.Name, g.State)
		}
		for _, i := range g.Instances {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", g.Name, g.State, i.ID, i.Zone, strings.TrimSpace(i.Lifecycle+" "+i.Health))
		}
	}
	tw.Flush() // into a bytes.Buffer: no error
	if len(st.Alarms) > 0 {
		fmt.Fprintln(w, "\nalarms:")
		for _, a := range st.Alarms {
			switch {
			case !a.Found:
				fmt.Fprintf(w, "  %s: not found\n", a.Name)
			case a.ActionsEnabled:
				fmt.Fprintf(w, "  %s: %s, actions enabled\n", a.Name, a.State)
			default:
				fmt.Fprintf(w, "  %s: %s, actions disabled\n", a.Name, a.State)
			}
		}
	}
	fmt.Fprintln(w)
	writeURLs(w, st.Outputs)
	if c := st.Certificate; c != nil {
		fmt.Fprintf(w, "\nTLS certificate (%s): %s\n  %s, valid until %s\n", c.Parameter, c.Fingerprint, c.Subject, c.NotAfter.UTC().Format(time.DateOnly))
	}
	_, err := out.Write(w.Bytes())
	return err
}
